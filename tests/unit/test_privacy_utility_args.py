"""`benchmarks/privacy_utility.py` takes your own files and names a bad scenario."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "privacy_utility.py"


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_an_unknown_scenario_is_named_with_the_choices(tmp_path: Path) -> None:
    done = _run("--scenarios", "mcid", "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "argument --scenarios: invalid choice: 'mcid'" in done.stderr
    assert "'files'" in done.stderr and "Traceback" not in done.stderr


def test_files_runs_your_own_files_named_after_the_double_dash(tmp_path: Path) -> None:
    # No budget and no privacy=off: nothing runs, so this checks only that
    # `files` is accepted and writes no files of its own.
    done = _run(
        "--scenarios",
        "files",
        "--epsilons",
        "--no-off",
        "--out",
        str(tmp_path),
        "--",
        "task.train_files=[a.csv]",
        "task.test_file=t.csv",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "| files |" not in done.stdout  # no run, so no row
    assert not (tmp_path / "files" / "files").exists()
