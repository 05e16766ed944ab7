"""Per-round time of a real deployment next to the simulation, in one run.

The same two sites' files, the same model and settings, DP on, run twice per
fine-tuning mode (head by default, LoRA too):

* deployment: a SuperLink and two SuperNodes on loopback with TLS and node
  authentication, launched with `flwr run` (tests/integration/loopback.py);
* simulation: `simulate` with the same files as `task.train_files` and
  `partition=natural`, so simulated client i holds exactly site i's file.

Both share this machine's cores: a simulated client computes on one thread
(Ray gives it `federation.cpus_per_client`, 1), and so does each deployed
site (OMP_NUM_THREADS=1); a site on a machine of its own uses all its cores.

It prints each mode's round times (round 1 embeds the records in head mode;
later rounds reuse the stored features), the ratio deployed / simulated for
the later rounds, and where a deployed site's message goes: Flower 1.41 starts
a fresh ClientApp process per message, so every round pays the process start
(Python, Flower, loading the app), the app's imports, reading the data or the
stored features, building the model, training and the reply. Those stages are
the medians over the later rounds of what each site's ClientApp wrote to
`message_timings.jsonl` in its state directory; the rest of a round is
Flower's transport and polling and the server's own work.

Usage:

    .venv/bin/python benchmarks/deployment_overhead.py [--rounds 4] \
        [--model minilm] [--modes head,lora] [--records-per-site 300] \
        [--labels 5] [--default-training]

The defaults (300 records of 5 intents per site, 1 local epoch at batch 64)
make a round as short as it gets, so Flower's per-message costs weigh most;
`--records-per-site 2000 --labels 77 --default-training` gives sites the size
of a bank client and fedmodel's default local training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fedmodel.client.message_timings import MESSAGE_TIMINGS  # noqa: E402
from fedmodel.config import compose_config  # noqa: E402
from fedmodel.run.console import setup_logging  # noqa: E402
from fedmodel.run.metrics import read_rounds  # noqa: E402

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

STAGES = ("process_start", "imports", "data", "model_load", "training", "reply")


def _round_seconds(run_dir: Path) -> list[float]:
    return [float(r["seconds"]) for r in read_rounds(run_dir)]


def _deploy(work: Path, sites: list[Path], overrides: list[str]) -> list[Path]:
    """Run the deployment; return each site's state directory."""
    from tests.integration.loopback import Loopback

    federation = Loopback(work)
    try:
        federation.start_superlink()
        for site_id, data_file in enumerate(sites):
            federation.site_keys(f"site-{site_id}", register=True)
            # The sites share this machine: each computes on one thread, as
            # each simulated client gets one CPU (federation.cpus_per_client).
            federation.start_site(
                f"site-{site_id}",
                site_id=site_id,
                data_file=data_file,
                max_epsilon=8,
                threads=1,
            )
        federation.run(
            " ".join(["federation=deployment", *overrides]),
            run_dir=work / "deployment",
            timeout=3600,
        )
    finally:
        federation.stop()
    return [federation.state(f"site-{i}") for i in range(len(sites))]


def _stage_medians(state_dirs: list[Path]) -> dict[str, float]:
    """Median seconds per stage over every site's messages after round 1."""
    lines = [
        json.loads(line)
        for state in state_dirs
        for line in (state / MESSAGE_TIMINGS).read_text().splitlines()
    ]
    later = [line for line in lines if line["round"] > 1]
    return {stage: statistics.median(t[stage] for t in later) for stage in STAGES}


def _print_stages(state_dirs: list[Path]) -> None:
    stages = _stage_medians(state_dirs)
    print("per message at a site, later rounds (median s):")
    print("| " + " | ".join(STAGES) + " | sum |")
    print("|" + "---|" * (len(STAGES) + 1))
    values = [stages[s] for s in STAGES]
    print("| " + " | ".join(f"{v:.2f}" for v in values) + f" | {sum(values):.2f} |")


def _one_mode(work: Path, args: argparse.Namespace, mode: str) -> None:
    from fedmodel.federation.simulation import simulate
    from tests.integration.site_files import write_site_files

    # After the imports: it quiets the loggers Flower, Ray and transformers set
    # up as they are imported.
    setup_logging()
    sites, test_file, labels = write_site_files(
        work, records_per_site=args.records_per_site, num_labels=args.labels
    )
    common = [
        f"model={args.model}",
        f"finetune={mode}",
        "task=files",
        f"task.test_file={test_file}",
        f"task.labels=[{','.join(labels)}]",
        "num_clients=2",
        f"num_rounds={args.rounds}",
    ]
    if not args.default_training:
        common += ["finetune.local_epochs=1", "finetune.batch_size=64"]
    state_dirs = _deploy(work, sites, common)
    deployed = _round_seconds(work / "deployment")
    simulated_run = [
        *common,
        f"task.train_files=[{sites[0]},{sites[1]}]",
        "partition=natural",
    ]
    simulate(
        compose_config(simulated_run),
        run_dir=work / "simulation",
        overrides=simulated_run,
    )
    simulated = _round_seconds(work / "simulation")
    later_deployed = statistics.median(deployed[1:])
    later_simulated = statistics.median(simulated[1:])
    training = (
        "fedmodel's default local training"
        if args.default_training
        else "1 local epoch at batch 64"
    )
    print(
        f"\n{args.model}, finetune={mode}, 2 sites x up to {args.records_per_site} "
        f"records of {args.labels} intents, DP on, {args.rounds} rounds, {training}"
    )
    print("| mode | round 1 s | later rounds s (median) |")
    print("|---|---|---|")
    print(f"| simulation | {simulated[0]:.1f} | {later_simulated:.1f} |")
    print(
        f"| deployment (TLS + node auth) | {deployed[0]:.1f} | {later_deployed:.1f} |"
    )
    print(
        f"deployed / simulated (later rounds): {later_deployed / later_simulated:.2f}"
        f" ({later_deployed - later_simulated:+.1f} s per round)"
    )
    _print_stages(state_dirs)
    print(f"outputs in {work}")


def main() -> None:
    """Run each fine-tuning mode deployed and simulated; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--modes", default="head,lora")
    parser.add_argument("--records-per-site", type=int, default=300)
    parser.add_argument(
        "--labels", type=int, default=5, help="Banking77 intents the sites hold"
    )
    parser.add_argument(
        "--default-training",
        action="store_true",
        help="keep fedmodel's local epochs and batch size (budget rule included) "
        "instead of 1 epoch at batch 64",
    )
    args = parser.parse_args()
    for mode in args.modes.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"fedmodel-deploy-bench-{mode}-"))
        _one_mode(work, args, mode)


if __name__ == "__main__":
    main()
