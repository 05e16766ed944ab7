"""Ctrl-C or SIGTERM before a simulation starts: nothing charged, a line saying so."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from fedmodel.cli.errors import EXIT_INTERRUPTED, EXIT_TERMINATED
from fedmodel.cli.hydra_files import SWEEP_DIR_KEY, run_dir_override, shell_words

# How a stopped run's line says what stopped it.
INTERRUPTED = "interrupted"
TERMINATED = "stopped by a termination signal (SIGTERM)"

# A signal's handling, as `signal.signal` takes and gives it.
Handler = Callable[[int, FrameType | None], Any] | int
# Each signal the commands take, with Python's own handling of it: a signal
# handled otherwise (a background job's ignored SIGINT, a handler someone
# else installed) is left as it is.
PYTHON_DEFAULTS: dict[signal.Signals, Handler] = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGTERM: signal.SIG_DFL,
}


class StoppedBeforeStart(KeyboardInterrupt):
    """Ctrl-C or SIGTERM came before the simulation started: nothing was charged.

    `run_dir`: the run folder, where the start found or kept one, and
    `sweep_dir`: the sweep's folder, where the job is a --multirun sweep's
    second or later, whose earlier jobs ran (both set by the Hydra task,
    which knows them); else None.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.run_dir: Path | None = None
        self.sweep_dir: Path | None = None


def stop_the_start(signum: int, frame: FrameType | None) -> None:
    """The handler of Ctrl-C and SIGTERM until the simulation starts."""
    raise StoppedBeforeStart(signum)


@contextlib.contextmanager
def signals_stop_the_start(prog: str, run_dir: Path | None = None) -> Iterator[None]:
    """Until the simulation starts, Ctrl-C or SIGTERM ends the command with a line.

    While Hydra composes the config and the start's checks run, nothing is
    charged: the line says so, names the run folder (the one the start found,
    `run_dir` where the caller names it) or that none was written, and the
    command exits 130 or 143. Left to Python's default, SIGTERM ended the
    command with no line, and Ctrl-C's line said rounds were kept and named a
    resume of a folder that held no run. The exception leaves through the
    blocks that put back what the start wrote (`refused_folder.py`), so a
    resume's folder keeps its run; the checks may have added to its log, and
    a finished run its cards and tracking. `signals_stop_the_server`
    (`interrupted.py`) takes over as the simulation starts.
    """
    if stop_the_start in map(signal.getsignal, PYTHON_DEFAULTS):
        yield  # inside `fedmodel resume`'s, which knows the run folder
        return
    try:
        with signals_stop_the_job_start():
            yield
    except StoppedBeforeStart as stop:
        folder = stop.run_dir or (run_dir if run_dir and run_dir.is_dir() else None)
        terminated = stop.signum == signal.SIGTERM
        line = before_start_line(
            prog, folder, terminated=terminated, sweep_dir=stop.sweep_dir
        )
        print(line, file=sys.stderr)
        raise SystemExit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED) from None


@contextlib.contextmanager
def signals_stop_the_job_start() -> Iterator[None]:
    """Ctrl-C or SIGTERM raise StoppedBeforeStart in the block, if Python's handle them.

    A --multirun sweep's later job starts after the job before it, whose
    `signals_stop_the_server` put Python's handling back as it ended: its
    Ctrl-C met the checks as a bare KeyboardInterrupt, a traceback and no line.
    """
    with contextlib.ExitStack() as handlers:
        for signum, default in PYTHON_DEFAULTS.items():
            if signal.getsignal(signum) is default:
                handlers.enter_context(handling(signum, stop_the_start))
        yield


def earlier_jobs_folder() -> Path | None:
    """The sweep's folder, where this job is a --multirun sweep's second or later."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN or hydra.job.num == 0:
        return None
    return Path(hydra.runtime.cwd) / hydra.sweep.dir


def before_start_line(
    prog: str, run_dir: Path | None, *, terminated: bool, sweep_dir: Path | None
) -> str:
    """What a stop before the simulation started left, and how to go on.

    In a sweep's later job, the jobs before it ran and charged their clients,
    and the same command again would start the sweep anew in a new folder
    (or be refused in its own): `resume=true` in its folder goes on from this
    job, keeping those that finished.
    """
    stopped = TERMINATED if terminated else INTERRUPTED
    left = (
        "no run folder was written"
        if run_dir is None
        else f"no round was run in {run_dir}"
    )
    if sweep_dir is None:
        return (
            f"{prog}: {stopped} before the run started; nothing was charged and "
            f"{left}. Run the same command again to start it."
        )
    added = shell_words(["resume=true", run_dir_override(sweep_dir, key=SWEEP_DIR_KEY)])
    return (
        f"{prog}: {stopped} before this sweep job's run started; nothing was "
        f"charged for it and {left}. The sweep's earlier jobs ran, and are kept "
        f"(their clients charged) in {sweep_dir}: continue the sweep with the "
        f"same command and {added} added, which keeps the jobs "
        "that finished as they are."
    )


@contextlib.contextmanager
def handling(
    signum: signal.Signals,
    handler: Callable[[int, FrameType | None], None],
    *,
    after: Handler | None = None,
) -> Iterator[None]:
    """`handler` handles `signum` in the block; `after` (else the one before) after."""
    before = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, before if after is None else after)
