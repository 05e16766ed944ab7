"""The sha256 of a file's bytes, by which a run knows a file it read again.

A resume compares the files it reads with the run's by this digest: the
task's data files and the distillation's transfer file
(`run/task_file_hashes.py`, `content_hash`) and the encoder's files
(`model/location.py`, `encoder_identity`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file's bytes; OSError where it cannot be read."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
