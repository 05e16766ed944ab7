"""The line Ctrl-C or SIGTERM leaves: the command that continues the stopped run."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from fedmodel.cli import interrupted, resume_finished
from fedmodel.cli.hydra_files import continue_argv, run_dir_override
from fedmodel.cli.interrupted import (
    Terminated,
    interrupted_line,
    stop_interrupted,
    unkept_overrides,
)
from fedmodel.cli.main import run_command
from fedmodel.cli.stopped_start import StoppedBeforeStart
from fedmodel.config import CONF_DIR
from fedmodel.run.layout import LOG_FILE
from tests.unit.test_resume import (
    HYDRA_SYNTAX_FOLDERS,
    RUN,
    _contents,
    _run_folder,
    _summary,
)


def test_the_line_names_fedmodel_resume_and_the_run_folder(tmp_path: Path) -> None:
    # The folder holds the run's overrides (in a --multirun sweep, the job's
    # own values), so the same short command continues it after a crash too.
    run_dir = tmp_path / "sweep 1" / "1"
    line = interrupted_line("fedmodel simulate", run_dir)
    prefix = "fedmodel simulate: interrupted; "
    assert line.startswith(prefix) and f"kept in {run_dir}." in line
    command = line.split("Continue the run with: ", 1)[1]
    assert shlex.split(command) == ["fedmodel", "resume", str(run_dir)]


class Exited(Exception):
    """`os._exit`, stood in for: the test process goes on."""


@pytest.mark.parametrize(
    ("interrupt", "code", "stopped"),
    [
        (KeyboardInterrupt(), 130, "interrupted"),
        (Terminated(), 143, "stopped by a termination signal (SIGTERM)"),
    ],
)
def test_the_exit_code_and_line_say_which_signal_stopped_the_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    interrupt: KeyboardInterrupt,
    code: int,
    stopped: str,
) -> None:
    # 128 + the signal, as a shell counts it, so that a job scheduler sees
    # its SIGTERM stopped the run; the line says how to continue it either way.
    def exit_with(status: int) -> None:
        raise Exited(status)

    monkeypatch.setattr(interrupted, "unkept_overrides", lambda: None)
    monkeypatch.setattr(interrupted.os, "_exit", exit_with)
    run_dir = tmp_path / "run"
    with pytest.raises(Exited) as exited:
        stop_interrupted("fedmodel resume", run_dir, interrupt)
    assert exited.value.args == (code,)
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"fedmodel resume: {stopped}; the rounds aggregated")
    assert line.endswith(f"Continue the run with: fedmodel resume {run_dir}")


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


# Beside those, names a shell reads inside double quotes.
@pytest.mark.parametrize("name", [*HYDRA_SYNTAX_FOLDERS, "x'$y", "q\"'", "`a'`"])
def test_the_commands_paste_back_into_a_shell_as_their_argv(
    tmp_path: Path, name: str
) -> None:
    # The folder's override is quoted for Hydra; the line quotes it again for
    # the shell, and both must come back as they were.
    run_dir = tmp_path / "out" / name
    launch = ["debug=smoke", "hydra.output_subdir=null", run_dir_override(run_dir)]
    simulate = interrupted_line("fedmodel simulate", run_dir, overrides=launch)
    resume = interrupted_line("fedmodel simulate", run_dir)
    for command, argv in [
        (
            simulate.split("continue the run with: ", 1)[1],
            ["fedmodel", "simulate", *continue_argv(launch, run_dir)],
        ),
        (
            resume.split("Continue the run with: ", 1)[1],
            ["fedmodel", "resume", str(run_dir)],
        ),
    ]:
        assert shlex.split(command) == argv
        assert _bash_words(command) == argv


def _bash_words(command: str) -> list[str]:
    """The words bash splits `command` into."""
    printed = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {command}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return printed.stdout.split("\0")[:-1]


@pytest.mark.parametrize("name", ["a,b[1]", "it's x=1"])
def test_a_word_holding_single_quotes_is_double_quoted_where_it_reads_the_same(
    tmp_path: Path, name: str
) -> None:
    # Not shlex's 'hydra.run.dir='"'"'.../a,b[1]'"'"''.
    run_dir = tmp_path / name
    line = interrupted_line("fedmodel simulate", run_dir, overrides=[])
    assert line.endswith(f'resume=true "{run_dir_override(run_dir)}"')


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


# `fedmodel ARGS` whose start's checks block until a signal comes; it says
# "checking" once they have begun, so the test signals no sooner.
BLOCKED_START = """
import signal, sys
from fedmodel.cli import simulate
from fedmodel.cli.main import main

def blocked(config, run_dir):
    print("checking", flush=True)
    signal.pause()

simulate._checked_start = blocked
main(sys.argv[1:])
"""


def _stopped_in_the_checks(
    args: list[str], signum: signal.Signals, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`fedmodel ARGS` sent `signum` while its start's checks run."""
    command = [sys.executable, "-c", BLOCKED_START, *args]
    with _started(command, cwd) as process:
        assert process.stdout is not None and process.stdout.readline() == "checking\n"
        process.send_signal(signum)
        out, err = _ended(process)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _started(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    """`command` with Python's own signal handling, whatever this process has.

    A child inherits an ignored SIGINT. In CI's pytest worker something
    before this file left SIGINT ignored, so the child's Ctrl-C never came
    and the test waited until CI's limit.
    """
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_python_signals,
    )


def _python_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then installs its own
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ended(process: subprocess.Popen[str]) -> tuple[str, str]:
    """`process`'s output once it exits; killed, and the test failed, after 60 s."""
    try:
        return process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running 60 s after the signal:\n{out}\n{err[-3000:]}")


def test_sigterm_as_a_resume_starts_leaves_its_folder_as_it_was(
    tmp_path: Path,
) -> None:
    # Left to Python's default, SIGTERM ended the command with no line; and
    # Hydra's files, written for this start, would have stayed as the run's.
    run = _run_folder(tmp_path / "run", RUN)
    (run / LOG_FILE).write_text("12:00:00 fedmodel round 1/2\n")
    before = _contents(run)
    done = _stopped_in_the_checks(["resume", str(run)], signal.SIGTERM, tmp_path)
    assert done.returncode == 143
    assert done.stderr.strip().splitlines()[-1] == (
        "fedmodel resume: stopped by a termination signal (SIGTERM) before the run "
        f"started; nothing was charged and no round was run in {run}. Run the same "
        "command again to start it."
    )
    assert _contents(run) == before


def test_a_finished_runs_resume_stopped_as_it_writes_says_no_round_was_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The resume of a finished run writes its cards and tracking, and the
    # checks' log lines stay in its folder: the line said the folder "is as
    # it was before this command".
    run = _run_folder(tmp_path / "run", RUN)
    _summary(run)

    def stopped_while_writing(settings: object, run_dir: Path, summary: object) -> str:
        (run_dir / "model_card.md").write_text("written before the stop\n")
        raise StoppedBeforeStart(signal.SIGINT)

    monkeypatch.setattr(resume_finished, "_complete", stopped_while_writing)
    with pytest.raises(SystemExit) as exited:
        run_command(["resume", str(run)])
    assert exited.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "fedmodel resume: interrupted before the run started; nothing was charged "
        f"and no round was run in {run}. Run the same command again to start it."
    )


def test_ctrl_c_as_a_new_run_starts_leaves_no_folder(tmp_path: Path) -> None:
    # Ctrl-C's line said the aggregated rounds were kept in a folder that
    # held none, and named a resume that refuses it.
    run = tmp_path / "new"
    args = ["simulate", *RUN, f"hydra.run.dir={run}"]
    done = _stopped_in_the_checks(args, signal.SIGINT, tmp_path)
    assert done.returncode == 130
    assert done.stderr.strip().splitlines()[-1] == (
        "fedmodel simulate: interrupted before the run started; nothing was charged "
        "and no run folder was written. Run the same command again to start it."
    )
    assert not run.exists()


# A --multirun sweep whose first job runs (a stand-in simulation) and whose
# second job's checks block until a signal comes, saying "checking" first.
SWEEP_STOPPED_IN_ITS_SECOND_START = """
import signal, sys, types
from fedmodel.cli import simulate
from fedmodel.cli.main import main

starts = []

def blocked(config, run_dir):
    starts.append(run_dir)
    if len(starts) == 2:
        print("checking", flush=True)
        signal.pause()

def ran(config, *, run_dir, overrides):
    return {"privacy_guarantee": {"epsilon": None}, "final_accuracy": 0.5,
            "final_macro_f1": 0.5, "wall_seconds": 1.0}

stand_in = types.ModuleType("fedmodel.federation.simulation")
stand_in.simulate = ran
sys.modules[stand_in.__name__] = stand_in
simulate._checked_start = blocked
main(sys.argv[1:])
"""


def test_ctrl_c_as_a_sweeps_second_job_starts_ends_on_the_line(
    tmp_path: Path,
) -> None:
    # The first job's server handlers put Python's back as they ended, so the
    # second job's start met a bare KeyboardInterrupt: a traceback, no line.
    sweep = tmp_path / "sweep"
    args = ["simulate", "--multirun", *RUN, "seed=1,2", f"hydra.sweep.dir={sweep}"]
    command = [sys.executable, "-c", SWEEP_STOPPED_IN_ITS_SECOND_START, *args]
    with _started(command, tmp_path) as process:
        assert process.stdout is not None
        assert "checking\n" in iter(process.stdout.readline, "")
        process.send_signal(signal.SIGINT)
        _, err = _ended(process)
    assert process.returncode == 130
    # The first job ran and was charged: the same command again would start
    # the sweep anew (or be refused in its folder), where resume=true goes on.
    assert err.strip().splitlines()[-1] == (
        "fedmodel simulate: interrupted before this sweep job's run started; "
        "nothing was charged for it and no run folder was written. The sweep's "
        f"earlier jobs ran, and are kept (their clients charged) in {sweep}: "
        f"continue the sweep with the same command and resume=true "
        f"hydra.sweep.dir={sweep} added, which keeps the jobs that finished as "
        "they are."
    )
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "multirun.yaml"]
