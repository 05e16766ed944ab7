"""Per-round overhead of a real deployment next to the simulation, in one run.

The same two sites' files, the same model and settings, DP on, run twice:

* deployment: a SuperLink and two SuperNodes on loopback with TLS and node
  authentication, launched with `flwr run` (tests/integration/loopback.py);
* simulation: `simulate` with the same files as `task.train_files` and
  `partition=natural`, so simulated client i holds exactly site i's file.

It prints each mode's round times (round 1 embeds the records once; later
rounds reuse the cached features) and the per-round difference. It also times
what Flower makes a deployed site pay every round: its ClientApp runs in a
fresh process per message (Flower 1.41 has no long-running ClientApp outside
its Kubernetes executors), so each round starts Python and imports the app.
Usage:

    .venv/bin/python benchmarks/deployment_overhead.py [--rounds 4] [--model minilm]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fedmodel.config import compose_config  # noqa: E402
from fedmodel.federation.simulation import simulate  # noqa: E402
from fedmodel.run.console import setup_logging  # noqa: E402
from fedmodel.run.metrics import read_rounds  # noqa: E402
from tests.integration.loopback import Loopback, write_site_files  # noqa: E402

RECORDS_PER_SITE = 300


def _cold_start_seconds(repeats: int = 3) -> float:
    """Median time for a fresh Python to import the ClientApp module."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import fedmodel.federation.client_app"], check=True
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _round_seconds(run_dir: Path) -> list[float]:
    return [float(r["seconds"]) for r in read_rounds(run_dir)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()
    setup_logging()
    work = Path(tempfile.mkdtemp(prefix="fedmodel-deploy-bench-"))
    sites, test_file, labels = write_site_files(work, records_per_site=RECORDS_PER_SITE)
    common = [
        f"model={args.model}",
        "task=files",
        f"task.test_file={test_file}",
        f"task.labels=[{','.join(labels)}]",
        "num_clients=2",
        f"num_rounds={args.rounds}",
        "finetune.local_epochs=1",
        "finetune.batch_size=64",
    ]

    federation = Loopback(work)
    try:
        federation.start_superlink()
        for site_id, data_file in enumerate(sites):
            federation.site_keys(f"site-{site_id}", register=True)
            federation.start_site(
                f"site-{site_id}", site_id=site_id, data_file=data_file, max_epsilon=8
            )
        federation.run(
            " ".join(["federation=deployment", *common]), run_dir=work / "deployment"
        )
    finally:
        federation.stop()
    deployed = _round_seconds(work / "deployment")

    simulate(
        compose_config(
            [*common, f"task.train_files=[{sites[0]},{sites[1]}]", "partition=natural"]
        ),
        run_dir=work / "simulation",
    )
    simulated = _round_seconds(work / "simulation")
    cold_start = _cold_start_seconds()

    later_deployed = statistics.median(deployed[1:])
    later_simulated = statistics.median(simulated[1:])
    print(
        f"\n{args.model}, 2 sites x {RECORDS_PER_SITE} records, DP on, "
        f"{args.rounds} rounds"
    )
    print("| mode | round 1 s | later rounds s (median) |")
    print("|---|---|---|")
    print(f"| simulation | {simulated[0]:.1f} | {later_simulated:.1f} |")
    print(
        f"| deployment (TLS + node auth) | {deployed[0]:.1f} | {later_deployed:.1f} |"
    )
    overhead = later_deployed - later_simulated
    print(
        f"deployment overhead per later round: {overhead:.1f} s "
        f"({later_deployed / later_simulated:.1f}x the simulated round)"
    )
    print(f"fresh-process import of the ClientApp (median of 3): {cold_start:.1f} s")
    print(f"outputs in {work}")


if __name__ == "__main__":
    main()
