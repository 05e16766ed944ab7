"""Flower/Ray overhead: simulation wall time vs the pure compute inside it.

Runs the default demo configuration (plus any Hydra overrides given) and prints
the run's wall time next to the summed compute of its parts: every client's
local rounds (data, model build, training) and the server's warm start and
evaluations. With one CPU per client two clients run at once on this 2-core
machine, so the compute sum can exceed the wall time; with
`federation.cpus_per_client=2` clients run one at a time and the ratio is the
overhead itself. Runs use `privacy=off`: under DP, clients do not release their
compute time (it is computed from their records without noise); DP's own cost
per step is what benchmarks/step_overhead.py measures. Usage:

    .venv/bin/python benchmarks/simulation_overhead.py [--out DIR] [overrides...]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from fedmodel.config import compose_config
from fedmodel.run.console import setup_logging

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

SETTINGS = {
    "2 clients at once (1 CPU each)": ["federation.cpus_per_client=1"],
    "1 client at a time (2 CPUs each)": ["federation.cpus_per_client=2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stamp = time.strftime("%Y-%m-%d/%H-%M-%S")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/bench-overhead") / stamp
    )
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    private = [o for o in args.overrides if o.lstrip("+~").startswith("privacy")]
    if private:
        # A DP client withholds its compute time (it is computed from its
        # records), so wall / compute would divide by nothing measured.
        parser.error(f"{' '.join(private)}: the overhead is measured without DP")
    from fedmodel.federation.simulation import simulate

    setup_logging()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    rows = []
    for index, (name, extra) in enumerate(SETTINGS.items()):
        chosen = ["privacy=off", *args.overrides, *extra]
        summary = simulate(
            compose_config(chosen), run_dir=args.out / str(index), overrides=chosen
        )
        compute = summary["client_compute_seconds"] + summary["server_compute_seconds"]
        rows.append((name, summary, compute))

    print()
    print("| setting | wall s | client compute s | server compute s | wall / compute |")
    print("|---|---|---|---|---|")
    for name, summary, compute in rows:
        print(
            f"| {name} | {summary['wall_seconds']:.1f} | "
            f"{summary['client_compute_seconds']:.1f} | "
            f"{summary['server_compute_seconds']:.1f} | "
            f"{summary['wall_seconds'] / compute:.2f} |"
        )
    print(f"\noverrides: {' '.join(args.overrides) or '(none)'}")


if __name__ == "__main__":
    main()
