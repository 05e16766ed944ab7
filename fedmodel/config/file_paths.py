"""The data files a config names, as absolute paths.

Every data file path is made absolute and normalised here, in
`settings_from_dict`, before patterns are matched: the resolved config,
`fedmodel privacy-plan`, the run and every file-role check see the same path,
and a run folder's `resolved_config.yaml` names its files whatever folder a
resume, `fedmodel audit` or a ClientApp later runs in. A leading `~` is the
user's home first: a shell leaves `~` in `task.test_file=~/t.csv` as it is
(the word is no shell assignment), and Python's file functions would take it
as a folder named `~`. Hydra's grammar refuses an unquoted `~`; quoted,
`task.test_file='~/t.csv'`, it arrives here (docs/simulation.md).

Links are not followed (the path keeps the names the user gave), except
that a `..` after one goes up from where it leads, as the system reads it;
the file role checks compare paths with links followed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The keys, by config group, whose values name data files fedmodel reads.
_FILE_KEYS = {
    "task": ("train_files", "test_file", "validation_file", "label_descriptions"),
    "distill": ("transfer_file",),
}


def with_absolute_paths(
    raw: dict[str, Any], *, base: Path | None = None
) -> dict[str, Any]:
    """`raw` with every data file path absolute, `~` expanded, `..` resolved.

    A relative path is taken from `base` (None: the working directory); an
    absolute one is only normalised, so the function may run again on its
    own output. A value of another type, and an empty path, are left for
    `build_typed` and the checks to name.
    """
    folder = str(base) if base is not None else os.getcwd()
    for group, keys in _FILE_KEYS.items():
        values = raw.get(group)
        if not isinstance(values, Mapping):
            continue
        made = {key: _absolute(values[key], folder) for key in keys if key in values}
        raw = {**raw, group: {**values, **made}}
    return raw


def relative_paths(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, path) of each data file path in `raw` that is not absolute.

    A run folder written before paths were stored absolute may hold them.
    """
    found = []
    for group, keys in _FILE_KEYS.items():
        values = raw.get(group)
        if not isinstance(values, Mapping):
            continue
        for key in keys:
            value = values.get(key)
            named = (
                [(f"{group}.{key}[{i}]", v) for i, v in enumerate(value)]
                if isinstance(value, list)
                else [(f"{group}.{key}", value)]
            )
            found += [
                (where, path)
                for where, path in named
                if isinstance(path, str) and path and not _is_absolute(path)
            ]
    return found


def _is_absolute(path: str) -> bool:
    return os.path.isabs(os.path.expanduser(path))


def _absolute(value: Any, folder: str) -> Any:
    if isinstance(value, list):
        return [_absolute(item, folder) for item in value]
    if isinstance(value, str) and value:
        return _normalised(Path(folder, os.path.expanduser(value)))
    return value


def _normalised(path: Path) -> str:
    """`path` without `.` and `..`, each `..` read as the system reads it.

    A `..` after a link goes up from where the link leads (`os.path.normpath`
    would drop the link's own name, naming another file); other links keep
    their names.
    """
    out = Path(path.anchor)
    for part in path.parts[1:]:
        if part == "..":
            out = (out.resolve() if out.is_symlink() else out).parent
        elif part != ".":
            out = out / part
    return str(out)
