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


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("num_clients=8", "report would have no centralized row"),
        ("+experiment=banks_eps8", "runs set experiment=centralized"),
        ("privacy.target_epsilon=2,4", "choose its budgets with EPSILONS"),
    ],
)
def test_a_key_the_sweep_sets_per_group_is_refused_before_anything_runs(
    tmp_path: Path, given: str, says: str
) -> None:
    """num_clients would leave no centralized run; the others failed late."""
    done = _sweep(tmp_path, "bank", "model=tiny", given)
    assert done.returncode == 2, done.stderr
    assert f"privacy_sweep.sh: error: {given}" in done.stderr
    assert says in done.stderr
    assert "make was called" not in done.stderr


def test_a_sweep_with_its_task_and_other_overrides_goes_on_to_install(
    tmp_path: Path,
) -> None:
    done = _sweep(tmp_path, "bank", "model=tiny", "seed=7", "num_rounds=2")
    assert done.returncode == 1
    assert done.stderr.strip() == "make was called"
