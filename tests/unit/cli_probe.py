"""What a `fedmodel` command imported, asked in a fresh interpreter (`PROBE`)."""

from __future__ import annotations

HEAVY = ("torch", "flwr", "transformers", "opacus", "datasets", "ray")
# Runs `fedmodel <command> --help` in a fresh interpreter and prints which
# heavy modules it imported.
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
