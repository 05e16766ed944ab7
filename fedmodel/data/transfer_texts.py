"""`distill.transfer_file`'s texts, read once a process for each version of the file.

The server distils the student on them after the last round, and checks
before round 1 that they can be read (`federation/preflight.py`). `fedmodel
simulate` and `fedmodel privacy-plan` read them first, before torch loads
(`data/readable_records.py`), and the checks after that in the same process
(the ServerApp of a simulation too) take the texts read then. A file changed
since (its size, modification time or inode) is read again.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fedmodel.config import RunSettings
from fedmodel.data.file_digest import FileVersion, file_version
from fedmodel.data.text_inputs import read_input_texts

_KEY = "distill.transfer_file"


def transfer_file_texts(settings: RunSettings) -> list[str] | None:
    """The texts of `distill.transfer_file`, as distillation reads them, or None.

    A table's texts are in `task.text_column`, as in the task's own files, so
    a file in the sites' format serves as it is. A file that cannot be read is
    refused each time it is asked for, with the reader's message.
    """
    name = settings.distill.transfer_file
    if name is None:
        return None
    texts = _read_texts(name, settings.task.text_column, file_version(Path(name)))
    return list(texts)  # a copy: the cached texts stay as read


@functools.lru_cache(maxsize=4)
def _read_texts(name: str, text_column: str, version: FileVersion) -> tuple[str, ...]:
    """The file's texts; `version` is in the key alone, so a changed file is re-read."""
    return tuple(read_input_texts(Path(name), key=_KEY, text_column=text_column).texts)
