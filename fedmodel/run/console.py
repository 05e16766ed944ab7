"""Where log lines go: fedmodel's on the console, everything in the run's log file.

By default the console shows only fedmodel's own lines (one timestamped line
per progress event) and the libraries' errors. Flower's and Ray's other lines,
and the progress bars of the `datasets` library, go to `fedmodel.log` in the
run folder instead; with `fedmodel simulate --verbose` (FEDMODEL_VERBOSE=1)
they show on the console as well. The HTTP client's line per request (a
deployment's ServerApp polls the SuperLink through httpx) is kept only when
verbose, in the log file.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from fedmodel.errors import FedmodelError
from fedmodel.run.layout import LOG_FILE
from fedmodel.run.stop_request import STOP_REQUESTED

CONSOLE_FORMAT = "%(asctime)s fedmodel %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
VERBOSE_ENV = "FEDMODEL_VERBOSE"
# Libraries that print to the console themselves; quiet unless verbose.
CHATTY_LOGGERS = ("flwr", "ray", "datasets", "transformers", "opacus")
# Libraries that log routine steps at INFO, kept out of the run's log unless
# verbose (their warnings stay): HTTP clients log every request (Flower's
# ServerApp talks to the SuperLink through httpx: hundreds of lines a round
# in a deployment's log), and alembic, which MLflow's database store runs,
# each plugin it sets up (14 of a files run's 58 lines).
ROUTINE_LOGGERS = ("httpx", "httpcore", "alembic")


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is at the time of writing.

    A handler bound to the stderr of its creation keeps writing there after a
    caller (pytest's capture, a tool embedding fedmodel) has replaced it.
    """

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


class _RunLogFile(logging.FileHandler):
    """The run folder's log file (marked so a second setup replaces it)."""


def _verbose_wanted() -> bool:
    return os.environ.get(VERBOSE_ENV, "").lower() in {"1", "true", "yes"}


def _shown_on_console(record: logging.LogRecord) -> bool:
    """A library's errors reach the console; its other lines when verbose.

    Not its errors once Ctrl-C or SIGTERM asked the run to stop: the stop ends
    Ray under the round Flower is running, and Flower logs each client actor it
    loses so as an error, a Ray traceback of some 35 lines, ahead of the line
    saying how to continue the run. The log file keeps them.
    """
    if _verbose_wanted():
        return True
    return record.levelno >= logging.ERROR and not STOP_REQUESTED.is_set()


def _fedmodel_error_in_one_line(record: logging.LogRecord) -> bool:
    """A library's line about a FedmodelError ends with its message, no traceback.

    Flower logs what the ServerApp raised with its traceback: under `flwr
    run`, a refused start (the federation's node count) streamed "Simulation
    raised an exception" and some 25 lines through Flower's frames, where the
    error's one line names the setting and the fix. Other errors keep theirs.
    """
    error = _fedmodel_error(record)
    if error is not None:
        record.msg = f"{record.getMessage()}: {error}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
    return True


def _fedmodel_error(record: logging.LogRecord) -> FedmodelError | None:
    """The FedmodelError a record's exception is, or was raised from."""
    error: BaseException | None = record.exc_info[1] if record.exc_info else None
    while error is not None and not isinstance(error, FedmodelError):
        error = error.__cause__ or error.__context__
    return error


def setup_logging(run_dir: Path | None = None) -> None:
    """Send fedmodel's INFO lines to stderr and, with `run_dir`, all lines to its log.

    Safe to call more than once (the ServerApp calls it again under `flwr run`):
    handlers are added once, and a new `run_dir` replaces the log file.
    FEDMODEL_VERBOSE=1 (what `fedmodel simulate --verbose` sets) shows the
    libraries' lines on the console; being in the environment, it reaches
    Ray's worker processes too.
    """
    verbose = _verbose_wanted()
    logger = logging.getLogger("fedmodel")
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if run_dir is not None:
        _log_to_file(Path(run_dir) / LOG_FILE)
    # Up to the root logger when it holds the run's log file. Otherwise (a Ray
    # worker, a site's ClientApp) the root may have a console handler of its
    # own, which would print each line a second time.
    to_file = any(isinstance(h, _RunLogFile) for h in logging.getLogger().handlers)
    logger.propagate = to_file
    _quiet_libraries(verbose=verbose, to_file=to_file)


def _on_a_root_console(record: logging.LogRecord) -> bool:
    """A console handler on the root logger prints a library's lines as its own do.

    Not a line its logger's own console handler printed (fedmodel's, and
    Flower's: under `flwr run` each of Flower's errors showed twice).
    """
    return not _printed_on_the_way(record.name) and _shown_on_console(record)


def _printed_on_the_way(name: str) -> bool:
    """Whether logger `name`, or one between it and the root, has a console handler."""
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None and logger is not logging.getLogger():
        if any(_is_console(handler) for handler in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


def _quiet_libraries(*, verbose: bool, to_file: bool) -> None:
    """Keep the libraries' console handlers for verbose runs; send lines to the file.

    Lines reach the root logger once it holds the run's log file, and with them
    any console handler a library put there: Opacus calls `logging.basicConfig`
    when it is imported, which under `flwr run` happens before the ServerApp
    sets up its log file. Those handlers are filtered like the libraries' own.
    """
    for handler in logging.getLogger().handlers:
        if _prints_to_the_terminal(handler):
            handler.removeFilter(_on_a_root_console)
            handler.addFilter(_on_a_root_console)
    for name in CHATTY_LOGGERS:
        library = logging.getLogger(name)
        library.propagate = to_file
        library.removeFilter(_fedmodel_error_in_one_line)
        library.addFilter(_fedmodel_error_in_one_line)
        if not verbose:
            library.setLevel(max(library.getEffectiveLevel(), logging.INFO))
        for handler in library.handlers:
            if _is_console(handler):
                # A filter outlives the level Flower resets on its handler.
                handler.removeFilter(_shown_on_console)
                handler.addFilter(_shown_on_console)
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        # The `datasets` progress bars ("Generating ...", "Flattening the
        # indices") write to stderr directly; Ray workers inherit the variable.
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        # Plain tqdm bars too, e.g. flwr-datasets' natural partitioner's
        # "Generating partition_id_to_indices" (tqdm reads TQDM_* variables).
        os.environ["TQDM_DISABLE"] = "1"
        if "datasets" in sys.modules:  # imported already: the variable is read
            sys.modules["datasets"].disable_progress_bars()


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


def _prints_to_the_terminal(handler: logging.Handler) -> bool:
    """A handler on this process's stderr or stdout (not, say, a test's capture)."""
    terminal = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    stream = getattr(handler, "stream", None)
    return _is_console(handler) and any(stream is t for t in terminal)


def close_log_file() -> None:
    """Stop writing the run's log file (before its folder is removed, or in tests)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _RunLogFile)]:
        root.removeHandler(handler)
        handler.close()


def _log_to_file(path: Path) -> None:
    close_log_file()
    root = logging.getLogger()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _RunLogFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
