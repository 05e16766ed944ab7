"""simulations/privacy_sweep.sh: its arguments are checked before anything runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "simulations" / "privacy_sweep.sh"


def _sweep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the script with a `make` that only says it was called (no install)."""
    stub = tmp_path / "bin" / "make"
    stub.parent.mkdir()
    stub.write_text('#!/usr/bin/env bash\necho "make was called" >&2\nexit 1\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    ("args", "got"),
    [((), "got no argument"), (("model=tiny", "seed=1"), "got 'model=tiny'")],
)
def test_a_sweep_without_its_task_first_is_refused_with_the_usage(
    tmp_path: Path, args: tuple[str, ...], got: str
) -> None:
    done = _sweep(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert "the first argument must be the task (bank or hospital)" in done.stderr
    assert got in done.stderr
    assert "simulations/privacy_sweep.sh TASK [overrides...]" in done.stderr
    assert "make was called" not in done.stderr
