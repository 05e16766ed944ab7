"""Stopping a running simulation at Ctrl-C or SIGTERM, saying how to continue it."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

from fedmodel.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    RESUME_PROG,
    SIMULATE_PROG,
)
from fedmodel.cli.hydra_files import continue_argv, of_the_launch, shell_words
from fedmodel.cli.stopped_start import (
    INTERRUPTED,
    PYTHON_DEFAULTS,
    TERMINATED,
    handling,
    stop_the_start,
)
from fedmodel.run.layout import HYDRA_DIR
from fedmodel.run.stop_request import STOP_REQUESTED

STDERR_FD = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM stopped the run: it takes Ctrl-C's way out, then exits 143."""


@contextlib.contextmanager
def signals_stop_the_server(prog: str, run_dir: Path) -> Iterator[None]:
    """While the simulation runs, Ctrl-C or SIGTERM stops the server, then the command.

    The KeyboardInterrupt reaches the command only after Flower and Ray have
    shut down, seconds later, while the ServerApp's thread goes on; it must
    learn of the interrupt the moment it comes (`run/stop_request.py`).
    SIGTERM (a job scheduler's time limit, `timeout`, `kill`) raises
    Terminated, a KeyboardInterrupt, so it takes the same way out; left to
    Python's default it ended the process with no line. Each signal only
    where Python's default (or the start's) handles it: a SIGINT the process ignores (a
    background job's) stays ignored, and a handler someone else installed
    stays theirs. The interrupt ends the command here (`stop_interrupted`),
    while a second signal is still only noted (`_Stopping`).
    """
    ours = [
        signum
        for signum, default in PYTHON_DEFAULTS.items()
        if signal.getsignal(signum) in (default, stop_the_start)
    ]
    stopping = _Stopping(prog=prog, run_dir=run_dir, signals=ours)
    with contextlib.ExitStack() as handlers:
        for signum in ours:
            # Python's own after: a signal once the run has finished is not
            # one before it started.
            after = PYTHON_DEFAULTS[signum]
            handlers.enter_context(handling(signum, stopping.stop, after=after))
        try:
            yield
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM's Terminated
            stop_interrupted(prog, run_dir, interrupt)


@dataclasses.dataclass
class _Stopping:
    """The first Ctrl-C or SIGTERM stops the run; those after it are only noted.

    Impatient users press Ctrl-C twice, and a scheduler may send SIGTERM
    again: raised again inside Flower's and Ray's shutdown, the interrupt
    broke it off halfway, and one raised as the command wrote its line gave
    a traceback instead. (A second SIGTERM also met Ray's shutdown setting
    SIGTERM to the default: no line, Ray's workers left running;
    `federation/simulation.py` turns that off.) A user who will not wait
    has SIGKILL, which the line names.
    """

    prog: str
    run_dir: Path
    signals: list[signal.Signals]
    noted: bool = False

    def stop(self, signum: int, frame: FrameType | None) -> None:
        STOP_REQUESTED.set()
        for handled in self.signals:
            signal.signal(handled, self.note)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def note(self, signum: int, frame: FrameType | None) -> None:
        if self.noted:
            return
        self.noted = True
        line = (
            f"{self.prog}: already stopping; the run is kept in {self.run_dir}. "
            "The line saying how to continue it follows once Flower and Ray have "
            f"stopped (seconds); `kill -KILL {os.getpid()}` ends the command at "
            "once, and the run can still be continued.\n"
        )
        # Not print: the handler may run while the main thread is writing
        # to sys.stderr, whose buffer refuses a reentrant write.
        os.write(STDERR_FD, line.encode())


def stop_interrupted(
    prog: str, run_dir: Path, interrupt: KeyboardInterrupt
) -> NoReturn:
    """Say where the run stopped and how to continue it; exit 130 at once.

    143 (128 + SIGTERM) where `interrupt` is Terminated, so that a job
    scheduler sees the run ended at its signal.

    Flower runs the ServerApp in a thread of its own that Ctrl-C does not
    reach: left to itself, it waits for its clients, whose Ray processes the
    interrupt has ended, until `federation.round_timeout` (an hour), and the
    interpreter waits for it before exiting. By now the simulation has shut
    Ray down and stopped the processes it started, every aggregated round is
    in the checkpoint, and the thread was told to start no round and write
    no summary (`signals_stop_the_server`), so nothing is lost by not waiting.
    """
    terminated = isinstance(interrupt, Terminated)
    line = interrupted_line(
        prog,
        run_dir,
        overrides=unkept_overrides(),
        stopped=TERMINATED if terminated else INTERRUPTED,
    )
    print(line, file=sys.stderr, flush=True)
    logging.shutdown()  # the run's log file gets its last lines
    sys.stdout.flush()
    os._exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)


def interrupted_line(
    prog: str,
    run_dir: Path,
    *,
    overrides: list[str] | None = None,
    stopped: str = INTERRUPTED,
) -> str:
    """The line naming the run folder and the command that continues the run.

    `stopped` says what stopped it (INTERRUPTED, TERMINATED).

    `fedmodel resume` reads the run's overrides from its folder, as it does
    after a crash or a kill; in a --multirun sweep the stopped job's folder
    holds that job's values, not the sweep's lists. `overrides` are the
    launch's where the folder does not keep them (`unkept_overrides`): the
    line then gives the whole `fedmodel simulate` command instead, which
    `fedmodel resume` runs.
    """
    kept = f"{prog}: {stopped}; the rounds aggregated so far are kept in {run_dir}."
    if overrides is None:
        command = f"{RESUME_PROG} {shell_words([str(run_dir)])}"
        return f"{kept} Continue the run with: {command}"
    argv = continue_argv(overrides, run_dir)
    return (
        f"{kept} It keeps no record of this start's overrides (hydra.output_subdir "
        f"is not {HYDRA_DIR}), so `{RESUME_PROG}` cannot continue it; continue "
        f"the run with: {SIMULATE_PROG} {shell_words(argv)}"
    )


def unkept_overrides() -> list[str] | None:
    """The overrides of the launch, if the run folder does not keep them; else None.

    Hydra writes them to RUN/<hydra.output_subdir>/overrides.yaml, which
    `fedmodel resume` reads as .hydra, the default; `hydra.output_subdir=null`
    writes none. The launch's own Hydra settings (its mode, a sweep's folder)
    are left out: the run goes on as one job in its folder.
    """
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    if hydra.output_subdir == HYDRA_DIR:
        return None
    own = [o for o in hydra.overrides.hydra if not of_the_launch(o)]
    return [*hydra.overrides.task, *own]
