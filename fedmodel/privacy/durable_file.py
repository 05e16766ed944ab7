"""Crash-safe replacement of a small file, and an exclusive lock beside it.

A reader sees either the old content or the new, never a mix, and once
`write_durably` returns the new content survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

if sys.platform != "win32":
    import fcntl


class RenameNotSynced(OSError):
    """`write_durably` replaced the file, but syncing its directory failed.

    Readers see the new content now; a power cut may still bring back the old.
    """


def write_durably(path: Path, text: str) -> None:
    """Replace `path` with `text`: temp file, fsync, rename, fsync the directory.

    On a failure up to the rename the previous content of `path` is untouched,
    the temp file is removed and the exception propagates. A failure after it
    raises `RenameNotSynced`: the new content is in place but not yet durable.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    try:
        _fsync_directory(directory)
    except OSError as exc:
        raise RenameNotSynced(*exc.args) from exc


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Delete temp files that `write_durably(path, ...)` left behind when killed.

    Takes `path`'s lock, so no writer is between its temp file and its rename.
    Returns what was removed.
    """
    if not path.parent.is_dir():
        return []
    stale = list(path.parent.glob(f".{path.name}.*.tmp"))
    if not stale:
        return []
    with exclusive_lock(path):
        stale = list(path.parent.glob(f".{path.name}.*.tmp"))
        for temp in stale:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    return stale


def _fsync_directory(directory: Path) -> None:
    # The rename itself lives in the directory entry; without this a crash can
    # bring back the old file even though the new one was fsynced.
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `<path>.lock` for the block.

    Serialises read-modify-write cycles of `path` across processes, so two
    processes charging one ledger cannot lose each other's entries.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+b") as handle:
        if sys.platform != "win32":
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if sys.platform != "win32":
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
