"""`distill.transfer_file`'s texts, read once a process for each version of the file.

The server distils the student on them after the last round, and checks
before round 1 that they can be read (`federation/preflight.py`). `fedmodel
simulate` and `fedmodel privacy-plan` read them first, before torch loads
(`data/readable_records.py`), and the checks after that in the same process
(the ServerApp of a simulation too) take the texts read then. A file changed
since (its size, modification time or inode) is read again.

The sha256 a run keeps of the file (`run/resumed_student.py`) is that of the
bytes whose texts the start took (`transfer_file_sha256`), hashed as they
were parsed: a file rewritten since, read again for the hash, would have
recorded content the student was never distilled on.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fedmodel.config import RunSettings
from fedmodel.data.file_digest import FileVersion, file_version
from fedmodel.data.text_inputs import read_input_texts

_KEY = "distill.transfer_file"


@dataclass(frozen=True)
class _Read:
    """One read of the file: its texts and the sha256 of the bytes they came from."""

    texts: tuple[str, ...]
    sha256: str


# The sha256 of the read whose texts this process last took, by file name:
# the start's distillation texts, whatever the file holds by the time its
# run folder records them.
_TAKEN: dict[str, str] = {}


def transfer_file_texts(settings: RunSettings) -> list[str] | None:
    """The texts of `distill.transfer_file`, as distillation reads them, or None.

    A table's texts are in `task.text_column`, as in the task's own files, so
    a file in the sites' format serves as it is. A file that cannot be read is
    refused each time it is asked for, with the reader's message.
    """
    name = settings.distill.transfer_file
    if name is None:
        return None
    read = _read_texts(name, settings.task.text_column, file_version(Path(name)))
    _TAKEN[name] = read.sha256
    return list(read.texts)  # a copy: the cached texts stay as read


def transfer_file_sha256(settings: RunSettings) -> str | None:
    """The sha256 of the bytes whose texts this process last took, or None.

    That is the file's content hash (`content_hash`'s format), of the bytes
    the start's texts were parsed from (`transfer_file_texts`), though the
    file be rewritten since; read now where this process took none. None
    without a `distill.transfer_file`.
    """
    name = settings.distill.transfer_file
    if name is None:
        return None
    if name not in _TAKEN:
        transfer_file_texts(settings)
    return _TAKEN[name]


@functools.lru_cache(maxsize=4)
def _read_texts(name: str, text_column: str, version: FileVersion) -> _Read:
    """The file's texts; `version` is in the key alone, so a changed file is re-read."""
    digest = hashlib.sha256()
    texts = read_input_texts(
        Path(name), key=_KEY, text_column=text_column, bytes_read=digest.update
    ).texts
    return _Read(tuple(texts), digest.hexdigest())
