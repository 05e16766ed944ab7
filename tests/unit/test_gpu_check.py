"""`benchmarks/gpu_check.sh --help` says what the check does, needs and takes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0_without_python(flag: str) -> None:
    # No Python to run: the help must not need torch, CUDA or the venv.
    env = {**os.environ, "PYTHON": "/nonexistent/python"}
    done = subprocess.run(
        ["bash", str(SCRIPT), flag],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.returncode == 0
    assert done.stderr == ""
    assert "Usage: bash benchmarks/gpu_check.sh [-h|--help]" in done.stdout
    assert "device=cuda" in done.stdout and "Needs:" in done.stdout
    assert "#" not in done.stdout
