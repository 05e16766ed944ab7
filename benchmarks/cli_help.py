"""How long `fedmodel COMMAND --help` takes, and which heavy modules it loads.

Each command's help runs in a fresh interpreter `--repeats` times; the table
shows the median wall time and the CPU time (user + system) of the child, so
a busy machine shows up as wall >> CPU. The target is under 2 s each; the
heavy-import check is also a test (tests/unit/test_cli.py).

    .venv/bin/python benchmarks/cli_help.py
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedmodel.cli.main import COMMANDS  # noqa: E402

HEAVY = ("torch", "flwr", "transformers", "opacus", "datasets", "ray")
PROBE = f"""
import json, sys
from fedmodel.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({list(HEAVY)}))
print(json.dumps(heavy), file=sys.stderr)
"""


def _one(argv: list[str]) -> tuple[float, float, list[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    heavy = json.loads(done.stderr.strip().splitlines()[-1])
    return wall, cpu, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = ["", "simulate", *(c.name for c in COMMANDS)]
    print("| command | median wall s | median CPU s | heavy modules imported |")
    print("|---|---|---|---|")
    for name in names:
        argv = [name, "--help"] if name else ["--help"]
        runs = [_one(argv) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        heavy = ", ".join(runs[-1][2]) or "none"
        print(f"| `fedmodel {' '.join(argv)}` | {wall:.2f} | {cpu:.2f} | {heavy} |")


if __name__ == "__main__":
    main()
