"""Derive the budget-dependent head settings: DP-SGD FedAvg on cached features.

The experiment behind `fedmodel/config/budget_table.py`. For bank and
hospital (never the held-out files scenario of `privacy_utility.py`) it runs
the grid's settings at each budget with `head_fedavg.py` (the run's
`plan_privacy`, `private_training`, `train_epochs`, FedAvg weighted by record
count on cached encoder features). Candidates are scored on the union of the
clients' local validation splits (not the test split).

    .venv/bin/python benchmarks/hyperparameter_rule.py --scenarios bank hospital \
        --epsilons 1 3 8 0 --seeds 42 --grid step   (0: privacy off)
    .venv/bin/python benchmarks/hyperparameter_rule.py --grid rule \
        --epsilons 1 3 8 0 --seeds 42 7   (the rule against its variants)
    (add --accountant rdp for noise calibrated with RDP, as the figures in
    docs/strict-budgets.md were; runs charge with PRV)
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import statistics
import time
from pathlib import Path

from head_candidates import CACHE, Candidate, rule_candidate, run_accountant

from fedmodel.config.modes import ACCOUNTANT_NAMES

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.


def rule_candidates(epsilon: float) -> list[Candidate]:
    """fedmodel's rule at `epsilon` (0: off), the same with the bias trained,
    and the rule before the bias was held (clip 1, a smaller step), from the
    label-name start and from the warm start."""
    rule = rule_candidate(epsilon)
    before = {1.0: 0.25, 3.0: 1.0, 8.0: 2.0}.get(epsilon, 2.0)
    old = Candidate(before, 512, 10, 6, 1.0, "label")
    if not epsilon:
        return [rule, dataclasses.replace(rule, init="warm")]
    return [
        rule,
        dataclasses.replace(rule, hold_bias=False),
        old,
        dataclasses.replace(rule, init="warm"),
        dataclasses.replace(old, init="warm"),
    ]


GRIDS: dict[str, list[Candidate]] = {
    # The local step (lr x clip) at the default batch, rounds and epochs.
    "step": [Candidate(lr, 512, 10, 6, 1.0, "label") for lr in (0.5, 1.0, 2.0)],
    # Larger expected batch / fewer epochs at a small step.
    "batch": [
        Candidate(0.5, 1024, 10, 6, 1.0, "label"),
        Candidate(1.0, 512, 10, 3, 1.0, "label"),
    ],
    # Smaller steps, fewer epochs (less noise per step), from the warm start
    # that bank and hospital runs begin with.
    "strict": [
        Candidate(lr, 512, 10, epochs, 1.0, "warm")
        for lr, epochs in ((0.1, 6), (0.25, 6), (0.5, 6))
    ],
    # The public starting point at the default step.
    "init": [Candidate(2.0, 512, 10, 6, 1.0, init) for init in ("random", "warm")],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["bank", "hospital"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 3.0, 8.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--grid", choices=[*GRIDS, "rule"], default="step")
    default_accountant = run_accountant()
    parser.add_argument(
        "--accountant",
        choices=list(ACCOUNTANT_NAMES),
        default=default_accountant,
        help=f"calibrate the noise with this accountant (default: a run's, "
        f"{default_accountant})",
    )
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument("--out", type=Path, default=CACHE / "results.jsonl")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch
    from head_features import features
    from head_fedavg import run

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    for task in args.scenarios:
        for seed in args.seeds:
            started = time.perf_counter()
            features(task, seed)
            print(
                f"features {task} seed {seed}: {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    if args.embed_only:
        return
    jobs = [
        (task, epsilon, cand)
        for task, epsilon in itertools.product(args.scenarios, args.epsilons)
        for cand in (
            rule_candidates(epsilon) if args.grid == "rule" else GRIDS[args.grid]
        )
    ]
    for task, epsilon, cand in jobs:
        rows = [
            run(
                features(task, s),
                cand,
                epsilon=epsilon if epsilon > 0 else None,
                seed=s,
                accountant=args.accountant,
            )
            for s in args.seeds
        ]
        mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
        line = {
            "task": task,
            "epsilon": epsilon,
            "accountant": args.accountant,
            **vars(cand),
            **mean,
        }
        with args.out.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        print(
            f"{task} eps {epsilon:g} {args.accountant} {cand.label()}: "
            f"start {mean['start']:.4f} "
            f"final {mean['final']:.4f} best {mean['best']:.4f} "
            f"sigma {mean['sigma0']:.2f} q {mean['q0']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
