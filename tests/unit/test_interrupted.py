"""The line Ctrl-C leaves: the command that continues the stopped run."""

from __future__ import annotations

import shlex
from pathlib import Path

from fedmodel.cli.interrupted import interrupted_line


def test_the_line_names_fedmodel_resume_and_the_run_folder(tmp_path: Path) -> None:
    # The folder holds the run's overrides (in a --multirun sweep, the job's
    # own values), so the same short command continues it after a crash too.
    run_dir = tmp_path / "sweep 1" / "1"
    line = interrupted_line("fedmodel simulate", run_dir)
    prefix = "fedmodel simulate: interrupted; "
    assert line.startswith(prefix) and f"kept in {run_dir}." in line
    command = line.split("Continue the run with: ", 1)[1]
    assert shlex.split(command) == ["fedmodel", "resume", str(run_dir)]
