"""What a `fedmodel` command imported, asked in a fresh interpreter (`PROBE`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HEAVY = ("torch", "flwr", "transformers", "opacus", "datasets", "ray")
# What a command loads after reading the task's files (`datasets` reads them).
MODEL_LIBRARIES = {"torch", "opacus", "transformers", "flwr", "ray"}
_TRANSFER = ("task.train_files=[{tmp}/site.csv]", "distill=server")
# A files task's overrides with one mistake, and the words of its refusal;
# {tmp} is the folder `bad_file_probed` writes the files in.
BAD_FILES = [
    (("task.train_files=[{tmp}/missing.csv]",), "missing.csv does not exist"),
    (("task.train_files=[{tmp}/bad.csv]",), "line 3 has 1 field but the header"),
    (
        (*_TRANSFER, "distill.transfer_file={tmp}/site.csv"),
        "is the same file as task.train_files[0]",
    ),
    (
        (*_TRANSFER, "distill.transfer_file={tmp}/nope.csv"),
        "distill.transfer_file: file {tmp}/nope.csv does not exist",
    ),
    (
        (*_TRANSFER, "distill.transfer_file={tmp}/bad.csv"),
        "distill.transfer_file: file {tmp}/bad.csv, line 3 has 1 field",
    ),
    (
        ("task.train_files=[{tmp}/site.csv]", "task.label_descriptions={tmp}/a.csv"),
        "task.label_descriptions: file {tmp}/a.csv has no description of the "
        "label ['b']",
    ),
]
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


def bad_file_probed(
    command: str, tmp: Path, files: tuple[str, ...], *extra: str
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """`fedmodel COMMAND` on a files task in `tmp` with `files` (BAD_FILES'), probed."""
    (tmp / "bad.csv").write_text("text,label\nfoo,cardiac\nbar\n")
    (tmp / "site.csv").write_text("text,label\nhi,a\nho,b\nhe,a\nha,b\n")
    (tmp / "test.csv").write_text("text,label\nhu,a\nhy,b\n")
    (tmp / "a.csv").write_text("label,description\na,the first letter\n")
    overrides = (override.format(tmp=tmp) for override in files)
    return probed(
        command,
        "model=tiny",
        "task=files",
        *overrides,
        f"task.test_file={tmp}/test.csv",
        *extra,
        timeout=300,
    )
