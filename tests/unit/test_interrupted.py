"""The line Ctrl-C leaves: the command that continues the stopped run."""

from __future__ import annotations

import shlex
from pathlib import Path

from fedmodel.cli.interrupted import interrupted_line


def test_a_sweep_job_is_continued_with_its_own_values(tmp_path: Path) -> None:
    # Hydra gives a --multirun job its own values (overrides.task), not the
    # sweep's lists: `seed=42,43` without --multirun is refused, and with it
    # hydra.run.dir is ignored.
    run_dir = tmp_path / "sweep" / "1"
    line = interrupted_line(
        "fedmodel simulate",
        run_dir,
        ["task=hospital", "seed=43", "resume=false", "task.labels=[a b,c]"],
    )
    prefix = "fedmodel simulate: interrupted; "
    assert line.startswith(prefix)
    command = line.split("Continue the run with: ", 1)[1]
    assert shlex.split(command) == [
        "fedmodel", "simulate", "task=hospital", "seed=43", "task.labels=[a b,c]",
        "resume=true", f"hydra.run.dir={run_dir}",
    ]
