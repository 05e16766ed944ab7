"""One start at a time in a run folder: a second is refused, not run beside it.

Under `flwr run --stream`, Ctrl-C ends only the stream: the run goes on at
the SuperLink. A resume typed then, on the same `run-dir`, ran beside it:
both servers sent every later round to the sites, which charged each, and
wrote one metrics.jsonl, checkpoint and summary.json between them. A start
holds its run folder for its whole run (a lock on the folder itself, so no
file is added to it; the system drops it when the process ends, however it
ends), and a start that finds it held is refused before any message.

The start takes the folder only once Ray has started, 20-40 s after it was
typed; `refuse_if_held` asks first, so that a start typed while the run goes
on is refused at once, before it reads the run's summary: a `fedmodel resume`
that passed its finished-run check and then waited for the folder resumed a
run that had finished meanwhile, exporting its model and rewriting its
summary again. It does not keep apart two starts typed within those seconds
of each other: both find the folder free, and the one that takes it second
goes on once the first has ended, as a resume typed then would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from fedmodel.errors import FedmodelError

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)


@contextlib.contextmanager
def run_folder_held(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for the block; refuse it if another start holds it.

    The folder is made if missing. The refusal names the folder and how to
    find and stop the start that holds it; this start has sent nothing. A
    folder that cannot be made or opened is held by no start either: the
    run's folder check then names what is wrong with it (`folder_check.py`).
    """
    fd = None if sys.platform == "win32" else _opened(run_dir)  # win32: no flock
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FedmodelError(_IN_USE.format(run_dir=run_dir)) from None
        except OSError as exc:
            # A file system that locks no folder (NFS may take a lock on a
            # file opened for writing only) keeps no start apart: it runs.
            log.warning(
                "run folder %s cannot be locked (%s): nothing keeps a "
                "second start of this run out of it",
                run_dir,
                exc,
            )
        yield
    finally:
        os.close(fd)  # and with it the lock


def refuse_if_held(run_dir: Path) -> None:
    """Refuse `run_dir` at once if another start holds it; take nothing.

    Where it is free this says nothing, and the start takes it later
    (`run_folder_held`); a folder that cannot be opened or locked is left to
    the start's own checks and warning, as there.
    """
    if sys.platform == "win32" or not run_dir.is_dir():
        return
    fd = _opened(run_dir)
    if fd is None:
        return
    try:
        # Shared, and kept only until the descriptor closes below: a start
        # taking the folder in that instant is refused, having sent nothing.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FedmodelError(_IN_USE.format(run_dir=run_dir)) from None
    except OSError:
        pass  # run_folder_held says so as the start takes the folder
    finally:
        os.close(fd)  # and with it the shared lock


def _opened(run_dir: Path) -> int | None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        return os.open(run_dir, os.O_RDONLY)
    except OSError:
        return None


_IN_USE = (
    "the run folder {run_dir} is in use by another start of this run, which "
    "is still going: a second beside it would train, and charge each client, "
    "again, so this one stopped before sending anything. Wait for that start "
    "to end, or stop it and then resume: a run of `flwr run` goes on at the "
    "SuperLink after Ctrl-C ends its stream (`flwr list` shows it running, "
    "`flwr stop <run-id>` stops it); one of `fedmodel simulate` or `fedmodel "
    "resume` ends with that command"
)
