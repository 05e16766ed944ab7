"""How a run knows a file it read again: its bytes' sha256, or its version unread.

A resume compares the files it reads with the run's by this digest: the
task's data files and the distillation's transfer file
(`run/task_file_hashes.py`, `content_hash`) and the encoder's files
(`model/location.py`, `encoder_identity`). A process that keeps what it read
from a file (the task's records, `data/tasks.py`; the transfer file's texts,
`data/transfer_texts.py`) keys it by the file's version instead, which a stat
tells: a file changed since is read again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# (device, inode, modification time in ns, size), or None where the file
# cannot be stat'ed: then the read that follows says why.
FileVersion = tuple[int, int, int, int] | None


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file's bytes; OSError where it cannot be read."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_version(path: Path) -> FileVersion:
    """What tells one version of the file from another without reading it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
