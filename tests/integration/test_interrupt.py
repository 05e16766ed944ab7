"""Ctrl-C or SIGTERM stops `fedmodel simulate` at once; `fedmodel resume` goes on."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import ONE_ACTOR

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
# How long the run's processes may take to end after the command has.
LEFTOVER_SECONDS = 10
# Into the seconds the command takes to stop: Ray's shutdown is under way.
SECOND_SIGNAL_SECONDS = 0.5
# How often a wait looks again: a line or an ended process is seen at once.
POLL_SECONDS = 0.1


def _wait_for(
    path: Path, ready: Callable[[str], bool], process: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + 400
    while not ready(path.read_text()):
        assert process.poll() is None, path.read_text()[-3000:]
        assert time.monotonic() < deadline, path.read_text()[-3000:]
        time.sleep(POLL_SECONDS)


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ctrl_c(pid: int) -> None:
    """Ctrl-C in a terminal: SIGINT to the foreground process group."""
    os.killpg(pid, signal.SIGINT)


def _terminate(pid: int) -> None:
    """`kill PID`, `timeout`: SIGTERM to the command alone, not its Ray processes."""
    os.kill(pid, signal.SIGTERM)


def _twice(stop: Callable[[int], None]) -> Callable[[int], None]:
    """`stop`, then again while the command stops, as an impatient user does."""

    def stop_twice(pid: int) -> None:
        stop(pid)
        time.sleep(SECOND_SIGNAL_SECONDS)
        with contextlib.suppress(ProcessLookupError):  # it may have stopped
            stop(pid)

    return stop_twice


def _left_running(group: int) -> list[str]:
    """The processes of `group` still running once they end or 10 s pass."""
    deadline = time.monotonic() + LEFTOVER_SECONDS
    while True:
        left = []
        for process in psutil.process_iter(["status", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if os.getpgid(process.pid) == group and process.info["status"] != (
                    psutil.STATUS_ZOMBIE
                ):
                    left.append(" ".join(process.info["cmdline"] or [])[:120])
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_SECONDS)


def _stop_at(
    command: list[str],
    console: Path,
    ready: Callable[[str], bool],
    cwd: Path,
    stop: Callable[[int], None] = _ctrl_c,
) -> tuple[int, str]:
    """Start `command`, `stop` it once `ready(output)`; (exit code, output).

    No process of the run may outlive the command by more than 10 s.
    """
    with console.open("w") as out:
        # A session of its own: the signal reaches the run and its Ray
        # processes, as Ctrl-C in a terminal reaches the foreground group.
        # A terminal's foreground job takes SIGINT; a shell without job
        # control starts its background jobs with SIGINT ignored, which the
        # run would inherit (as a CI runner may start the suite), so the run
        # gets the default back, as in a terminal.
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,
            preexec_fn=_default_signals,
        )
        try:
            _wait_for(console, ready, process)
            stop(process.pid)
            # Before, the ServerApp's thread kept the process waiting for its
            # clients, up to federation.round_timeout (an hour).
            code = process.wait(timeout=120)
            left = _left_running(process.pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert not left, left
    return code, console.read_text()


def _simulate_200_rounds(run_dir: Path) -> list[str]:
    """A smoke run of 200 rounds: a stop lands mid-run, not as the run ends.

    In one Ray actor (ONE_ACTOR): the stop still meets Ray's processes. No
    warm start (1-4 s before round 1 of every start): no test reads the model.
    """
    return [
        *[sys.executable, "-m", "fedmodel", "simulate", "debug=smoke"],
        *["num_rounds=200", ONE_ACTOR, "warm_start.enabled=false"],
        f"hydra.run.dir={run_dir}",
    ]


def _two_rounds_after_resuming(text: str) -> bool:
    """Whether a resumed run logged the second round after the one it resumed at."""
    resumed = re.search(r"resuming .* after round (\d+)", text)
    return resumed is not None and f"round {int(resumed[1]) + 2}/200" in text


def test_ctrl_c_stops_the_run_and_fedmodel_resume_continues_it(
    tmp_path: Path,
) -> None:
    # 200 rounds, so that Ctrl-C lands mid-run: the ServerApp's thread goes on
    # for a moment after it, and a 3-round smoke run could finish (and write
    # its summary) in that moment.
    run_dir = tmp_path / "run"
    code, text = _stop_at(
        _simulate_200_rounds(run_dir),
        tmp_path / "console.txt",
        lambda text: "round 2/200" in text,
        REPO,
        stop=_twice(_ctrl_c),
    )
    assert code == 130, text[-3000:]
    # Flower's threads may log the messages the ended actors lost as errors;
    # the interrupt itself ends on one line, with no traceback of its own,
    # the second Ctrl-C only noted.
    assert "KeyboardInterrupt" not in text, text[-3000:]
    assert text.count("already stopping") <= 1, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("fedmodel simulate: interrupted;"), text[-3000:]
    assert last.endswith(f"with: fedmodel resume {run_dir}"), last
    assert (run_dir / "checkpoint" / "state.pt").is_file()

    # The command it names, from another folder, reads the run's overrides
    # (debug=smoke num_rounds=200 ...) from the folder and goes on from its
    # checkpoint; stopped again two rounds on, it names itself. (Rounds take
    # a fraction of a second: the first run may have gone on past round 2.)
    code, text = _stop_at(
        [sys.executable, "-m", "fedmodel", "resume", str(run_dir)],
        tmp_path / "resumed.txt",
        _two_rounds_after_resuming,
        tmp_path,
    )
    assert code == 130, text[-3000:]
    assert f"resuming {run_dir} after round" in text, text[-3000:]
    assert "round 1/200" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("fedmodel resume: interrupted;"), text[-3000:]
    assert last.endswith(f"with: fedmodel resume {run_dir}"), last


def test_sigterm_stops_the_run_as_ctrl_c_does(tmp_path: Path) -> None:
    # A job scheduler's time limit, `timeout`, `kill PID` (twice). Before,
    # Ray's handler aborted the command (exit 134) with no line naming the run.
    run_dir = tmp_path / "run"
    code, text = _stop_at(
        _simulate_200_rounds(run_dir),
        tmp_path / "console.txt",
        lambda text: "round 1/200" in text,
        REPO,
        stop=_twice(_terminate),
    )
    # A second SIGTERM while Ray shut down ended the command (Ray had set
    # SIGTERM back to the default): no line, Ray's workers left running.
    assert code == 143, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last == (
        "fedmodel simulate: stopped by a termination signal (SIGTERM); the "
        f"rounds aggregated so far are kept in {run_dir}. Continue the run "
        f"with: fedmodel resume {run_dir}"
    ), text[-3000:]
    assert (run_dir / "checkpoint" / "state.pt").is_file()
    assert not (run_dir / "summary.json").exists()
