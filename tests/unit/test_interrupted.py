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


def _unkept(launch: list[str]) -> list[str] | None:
    """`unkept_overrides` of a launch with `launch` on its command line."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        config = compose("config", overrides=launch, return_hydra_config=True)
    HydraConfig.instance().set_config(config)
    try:
        return unkept_overrides()
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize(("subdir", "kept"), [(".hydra", True), ("null", False)])
def test_the_launchs_overrides_are_given_only_where_the_folder_lacks_them(
    subdir: str, kept: bool
) -> None:
    launch = ["num_rounds=5", "resume=true", f"hydra.output_subdir={subdir}"]
    unkept = _unkept(launch)
    assert unkept == (None if kept else launch)


def test_the_launchs_own_settings_are_left_out_however_written() -> None:
    # How this launch ran (its mode, a sweep's folder) is no part of the run;
    # Hydra reads `++hydra.sweep.dir=` as setting hydra.sweep.dir too.
    run = ["num_rounds=5", "hydra.output_subdir=null", "hydra.job.name=j"]
    launch = ["++hydra.sweep.dir=s", "hydra.mode=RUN"]
    assert _unkept([*run, *launch]) == run
