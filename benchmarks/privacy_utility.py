"""Accuracy at a privacy budget vs the non-private run, side by side.

Runs real Flower simulations (the same `simulate` that `make demo` runs) for each
scenario twice, with DP-SGD at the target epsilon and with privacy off, and
prints one table. Usage:

    .venv/bin/python benchmarks/privacy_utility.py [--epsilon 8] [--scenarios ...]
        [--out DIR] [-- extra hydra overrides applied to every run]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from fedmodel.config import compose_config
from fedmodel.federation.simulation import simulate
from fedmodel.run.console import setup_logging

SCENARIOS: dict[str, list[str]] = {
    "bank-1": ["task=bank", "num_clients=1", "partition=iid"],
    "bank-4-dirichlet": ["task=bank", "num_clients=4", "partition=dirichlet"],
    "hospital-4-dirichlet": ["task=hospital", "num_clients=4", "partition=dirichlet"],
}


def run(overrides: list[str], out: Path) -> dict[str, float]:
    """One simulation; the figures the table shows."""
    started = time.perf_counter()
    summary = simulate(compose_config(overrides), run_dir=out)
    epsilons = [c["epsilon"] for c in summary["clients"] if c["epsilon"] is not None]
    return {
        "accuracy": summary["final_accuracy"],
        "macro_f1": summary["final_macro_f1"],
        "epsilon": max(epsilons) if epsilons else float("nan"),
        "minutes": (time.perf_counter() - started) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    stamp = time.strftime("%Y-%m-%d/%H-%M-%S")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/bench-privacy") / stamp
    )
    parser.add_argument("extra", nargs="*", help="hydra overrides for every run")
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("flwr").setLevel(logging.WARNING)

    rows = []
    for name in args.scenarios:
        base = [*SCENARIOS[name], *args.extra]
        private = run(
            [*base, "privacy=dpsgd", f"privacy.target_epsilon={args.epsilon}"],
            args.out / name / "dp",
        )
        baseline = run([*base, "privacy=off"], args.out / name / "off")
        rows.append((name, private, baseline))

    print()
    print(
        f"| scenario | non-private acc | DP acc (eps {args.epsilon:g}) | gap "
        "(points) | DP macro-F1 | max client eps | minutes DP / off |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, private, baseline in rows:
        gap = 100 * (baseline["accuracy"] - private["accuracy"])
        print(
            f"| {name} | {baseline['accuracy']:.4f} | {private['accuracy']:.4f} | "
            f"{gap:.1f} | {private['macro_f1']:.4f} | {private['epsilon']:.3f} | "
            f"{private['minutes']:.1f} / {baseline['minutes']:.1f} |"
        )
    extra = " ".join(args.extra)
    print(f"\noverrides on every run: {extra or '(none)'}")
    results = {name: {"dp": p, "off": b} for name, p, b in rows}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
