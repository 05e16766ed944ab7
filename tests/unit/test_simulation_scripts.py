"""The scripts in simulations/ check their arguments before anything runs.

Each runs with a `make` on PATH that only says it was called, so nothing is
installed or trained: a refusal must come before `make install`, and an
accepted command line reaches it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SIMULATIONS = Path(__file__).resolve().parents[2] / "simulations"


def _script(
    tmp_path: Path, name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `simulations/name` with a stub `make` (no install) and `env` added."""
    stub = tmp_path / "bin" / "make"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text('#!/usr/bin/env bash\necho "make was called" >&2\nexit 1\n')
    stub.chmod(0o755)
    path = f"{stub.parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", str(SIMULATIONS / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, **(env or {})},
    )


def _sweep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _script(tmp_path, "privacy_sweep.sh", *args)


def _audit(tmp_path: Path, audit_dir: Path) -> subprocess.CompletedProcess[str]:
    return _script(
        tmp_path, "audit_power.sh", "model=tiny", env={"AUDIT_DIR": str(audit_dir)}
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


@pytest.mark.parametrize("held", ["off", "eps1"])
def test_an_audit_dir_an_earlier_run_wrote_is_refused_before_anything_runs(
    tmp_path: Path, held: str
) -> None:
    # Before, make install ran and the first run was refused by fedmodel with
    # advice (resume=true, hydra.run.dir=) for keys the script sets itself.
    earlier = tmp_path / "audit"
    (earlier / held).mkdir(parents=True)
    done = _audit(tmp_path, earlier)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        f"audit_power.sh: error: AUDIT_DIR={earlier} already holds {earlier / held}"
    )
    assert f"give a new AUDIT_DIR (e.g. AUDIT_DIR={earlier}-2" in done.stderr
    assert "make was called" not in done.stderr


def test_a_new_or_empty_audit_dir_goes_on_to_install(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "new", tmp_path / "empty"):
        done = _audit(tmp_path, folder)
        assert done.returncode == 1
        assert done.stderr.strip() == "make was called"
