"""The task's data files by content, so a resume may name them moved, not rewritten.

A resume keeps the settings that deal each client's records
(`resumed_settings.py`), the task's data files among them. Each start keeps
the sha256 of each file it names that this process can read
(`record_task_files`). A resume whose path names a recorded file refuses it
where its bytes are not the recorded ones (`rewritten_files`): rewritten at
the run's path, it holds other records, which under `privacy=off` or
`central` nothing else would notice. A resume naming the run's file under
another folder (moved with the run folder, say) is taken where the file has
the same name and the same bytes: it holds the same records in the same
order, dealt to the same clients, whose ledgers count them. Any other path
is a changed key, as is a path whose file this process cannot read (a
deployed server need not hold the sites' files), and every path of a run
folder written before this record was kept. A simulated client's round
compares the bytes its records were parsed from with the same record
(`client/task_files_read.py`), so a file edited during the run stops it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedmodel.config import RunSettings
from fedmodel.data.file_digest import file_sha256
from fedmodel.privacy.durable_file import write_durably
from fedmodel.run.layout import RESOLVED_CONFIG, TASK_FILE_HASHES
from fedmodel.run.run_files import parsed_mapping

# The task keys that name data files (a list of them for train_files).
TASK_FILE_KEYS = (
    "task.train_files",
    "task.test_file",
    "task.validation_file",
    "task.label_descriptions",
)
_UNREADABLE_FIX = (
    "make it readable, or resume with the data files at the paths the run "
    f"named (its {RESOLVED_CONFIG})"
)


def record_task_files(run_dir: Path, settings: RunSettings) -> None:
    """Keep the sha256 of each task data file this start names, by its path.

    Written before the start's resolved config. A resume's files are the
    run's (its checks compared them), so it keeps the run's earlier hashes
    too: a kill before its config is written leaves the hashes of the paths
    the run's config names, and after, of those this start's names. A new
    run's record is its own.
    """
    named = [
        path
        for key in TASK_FILE_KEYS
        for path in _paths(getattr(settings.task, key.removeprefix("task.")))
        if path
    ]
    hashes = {
        path: digest
        for path in named
        if (digest := content_hash(Path(path))) is not None
    }
    kept = _recorded(run_dir) if settings.resume and named else {}
    record = json.dumps({**kept, **hashes}, indent=1) + "\n"
    write_durably(run_dir / TASK_FILE_HASHES, record)


def moved_unchanged(run_dir: Path, *, was: Any, now: Any) -> bool:
    """Whether the files `now` names are the run's files `was` named, moved.

    `was` and `now` are one task file key's values (a path, a list of paths
    or None): each path is the run's, or a file of its name and recorded
    content.
    """
    was_paths, now_paths = _paths(was), _paths(now)
    if len(was_paths) != len(now_paths):
        return False
    recorded = _recorded(run_dir)
    return all(
        old == new
        or (
            isinstance(old, str)
            and isinstance(new, str)
            and Path(old).name == Path(new).name
            and recorded.get(old) is not None
            and recorded.get(old) == content_hash(Path(new))
        )
        for old, new in zip(was_paths, now_paths, strict=True)
    )


def rewritten_files(
    run_dir: Path, named: dict[str, Any], *, read: Mapping[str, str] | None = None
) -> list[str]:
    """How a refusal names each recorded file whose bytes differ now.

    `named` is this start's value of each task file key. `read` is the
    sha256 of the bytes a simulated client's records were parsed from, by
    `str(Path)` of each file (`ClientRead.file_sha256`); None: each file's
    now, as a resume compares them. A path the record lacks (an older run's,
    a file the run's start could not read), or whose file this process
    cannot read (or did not), is not compared.
    """
    paths = [
        (key, path)
        for key, value in named.items()
        for path in _paths(value)
        if isinstance(path, str)
    ]
    recorded = _recorded(run_dir) if paths else {}
    said = []
    for key, path in paths:
        was = recorded.get(path)
        if was is None:
            continue
        now = content_hash(Path(path)) if read is None else read.get(str(Path(path)))
        if now is not None and now != was:
            said.append(
                f"{key} {path!r}, whose content (sha256 {now[:12]}) is not the "
                f"run's (sha256 {was[:12]}, as its {TASK_FILE_HASHES} says)"
            )
    return said


def _paths(value: Any) -> list[Any]:
    """A task file key's value as a list: train_files' paths, or the one path."""
    return value if isinstance(value, list) else [value]


def content_hash(path: Path) -> str | None:
    """The sha256 of the file's bytes; None where it cannot be read."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def _recorded(run_dir: Path) -> dict[str, str]:
    """The run's last start's hashes by path; {} if it kept none (an older run).

    A record that cannot be read is an error naming it: read as none, the
    run's own files moved elsewhere were refused as other records.
    """
    path = run_dir / TASK_FILE_HASHES
    if not path.exists():
        return {}
    return parsed_mapping(path, fix=_UNREADABLE_FIX)
