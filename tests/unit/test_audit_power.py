"""simulations/audit_power.sh: an AUDIT_DIR is checked before anything runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "simulations" / "audit_power.sh"


def _audit(tmp_path: Path, audit_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the script with a `make` that only says it was called (no install)."""
    stub = tmp_path / "bin" / "make"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text('#!/usr/bin/env bash\necho "make was called" >&2\nexit 1\n')
    stub.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}",
        "AUDIT_DIR": str(audit_dir),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "model=tiny"], capture_output=True, text=True, env=env
    )


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
