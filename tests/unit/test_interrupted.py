"""The line Ctrl-C leaves: the command that continues the stopped run."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from fedmodel.cli.interrupted import interrupted_line, unkept_overrides
from fedmodel.config import CONF_DIR


def test_the_line_names_fedmodel_resume_and_the_run_folder(tmp_path: Path) -> None:
    # The folder holds the run's overrides (in a --multirun sweep, the job's
    # own values), so the same short command continues it after a crash too.
    run_dir = tmp_path / "sweep 1" / "1"
    line = interrupted_line("fedmodel simulate", run_dir)
    prefix = "fedmodel simulate: interrupted; "
    assert line.startswith(prefix) and f"kept in {run_dir}." in line
    command = line.split("Continue the run with: ", 1)[1]
    assert shlex.split(command) == ["fedmodel", "resume", str(run_dir)]


def test_without_kept_overrides_the_line_gives_the_whole_simulate_command(
    tmp_path: Path,
) -> None:
    # hydra.output_subdir=null: the folder has no .hydra/overrides.yaml, and
    # `fedmodel resume RUN` would refuse it. The line gives the launch's
    # overrides instead, set to continue the run in its folder.
    run_dir = tmp_path / "run 1"
    overrides = [
        "debug=smoke",
        "task.train_files=[a.csv,b.csv]",
        "hydra.output_subdir=null",
        f"hydra.run.dir={run_dir}",
    ]
    line = interrupted_line("fedmodel simulate", run_dir, overrides=overrides)
    assert "fedmodel resume" in line and "cannot continue it" in line
    command = line.split("continue the run with: ", 1)[1]
    continued = [*overrides[:3], "resume=true", f"hydra.run.dir={run_dir}"]
    assert shlex.split(command) == ["fedmodel", "simulate", *continued]


@pytest.mark.parametrize(("subdir", "kept"), [(".hydra", True), ("null", False)])
def test_the_launchs_overrides_are_given_only_where_the_folder_lacks_them(
    subdir: str, kept: bool
) -> None:
    launch = ["num_rounds=5", "resume=true", f"hydra.output_subdir={subdir}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        config = compose("config", overrides=launch, return_hydra_config=True)
    HydraConfig.instance().set_config(config)
    try:
        unkept = unkept_overrides()
    finally:
        HydraConfig.instance().cfg = None
    assert unkept == (None if kept else launch)
