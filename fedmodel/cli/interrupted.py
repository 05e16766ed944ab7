"""Stopping `fedmodel simulate` at Ctrl-C with a line that says how to go on."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

from fedmodel.cli.errors import EXIT_INTERRUPTED
from fedmodel.cli.resume import PROG as RESUME_PROG
from fedmodel.run.stop_request import STOP_REQUESTED


@contextlib.contextmanager
def ctrl_c_stops_the_server() -> Iterator[None]:
    """While the simulation runs, Ctrl-C first asks the ServerApp's thread to stop.

    The KeyboardInterrupt reaches the command only after Flower and Ray have
    shut down, seconds later, while the ServerApp's thread goes on; it must
    learn of the interrupt the moment it comes (`run/stop_request.py`). Only
    where Ctrl-C raises KeyboardInterrupt as Python's default: a SIGINT the
    process ignores (a background job's) stays ignored.
    """
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        STOP_REQUESTED.set()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_interrupted(prog: str, run_dir: Path) -> NoReturn:
    """Say where the run stopped and how to continue it; exit 130 at once.

    Flower runs the ServerApp in a thread of its own that Ctrl-C does not
    reach: left to itself, it waits for its clients, whose Ray processes the
    interrupt has ended, until `federation.round_timeout` (an hour), and the
    interpreter waits for it before exiting. By now the simulation has shut
    Ray down and stopped the processes it started, every aggregated round is
    in the checkpoint, and the thread was told to start no round and write
    no summary (`ctrl_c_stops_the_server`), so nothing is lost by not waiting.
    """
    print(interrupted_line(prog, run_dir), file=sys.stderr, flush=True)
    logging.shutdown()  # the run's log file gets its last lines
    sys.stdout.flush()
    os._exit(EXIT_INTERRUPTED)


def interrupted_line(prog: str, run_dir: Path) -> str:
    """The line naming the run folder and the command that continues the run.

    `fedmodel resume` reads the run's overrides from its folder, as it does
    after a crash or a kill; in a --multirun sweep the stopped job's folder
    holds that job's values, not the sweep's lists.
    """
    return (
        f"{prog}: interrupted; the rounds aggregated so far are kept in "
        f"{run_dir}. Continue the run with: {RESUME_PROG} "
        f"{shlex.quote(str(run_dir))}"
    )
