"""What a `fedmodel` command imported, asked in a fresh interpreter (`PROBE`)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

HEAVY = ("torch", "flwr", "transformers", "opacus", "datasets", "ray")
# Runs `fedmodel ARGS` in a fresh interpreter and prints its exit code and
# which heavy modules it imported.
PROBE = """
import json, sys
from fedmodel.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    code = done.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy}))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def probed(
    *args: str, timeout: float = 120, heavy: tuple[str, ...] = HEAVY
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """`fedmodel ARGS` run by `PROBE`: its exit code, `heavy` modules, the run."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=list(heavy)), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return json.loads(done.stderr.strip().splitlines()[-1]), done
