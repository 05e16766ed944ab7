"""The data files a config names, with a leading `~` made the user's home folder.

A shell leaves `~` in `task.test_file=~/t.csv` as it is (the word is no shell
assignment), and Python's file functions take it as a folder named `~`. So it
is expanded here, in `settings_from_dict`, before patterns are matched: the
resolved config, `fedmodel privacy-plan`, the run and every file-role check
see the same absolute path. Hydra's grammar refuses an unquoted `~`; quoted,
`task.test_file='~/t.csv'`, it arrives here (docs/simulation.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# The keys, by config group, whose values name data files fedmodel reads.
_FILE_KEYS = {
    "task": ("train_files", "test_file", "validation_file", "label_descriptions"),
    "distill": ("transfer_file",),
}


def with_home_expanded(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with `~` and `~user` expanded at the start of every data file path.

    A value of another type is left for `_build` to name; a path without a
    leading `~` is kept as written.
    """
    for group, keys in _FILE_KEYS.items():
        values = raw.get(group)
        if not isinstance(values, Mapping):
            continue
        expanded = {key: _expanded(values[key]) for key in keys if key in values}
        raw = {**raw, group: {**values, **expanded}}
    return raw


def _expanded(value: Any) -> Any:
    if isinstance(value, list):
        return [_expanded(item) for item in value]
    if isinstance(value, str) and value.startswith("~"):
        return os.path.expanduser(value)
    return value
