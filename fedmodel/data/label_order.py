"""The order of a files task's labels when `task.labels` does not list them.

Whole numbers are ordered by value. Before that, every label set was sorted as
text, and a run begun then holds that order's label ids: its checkpoint's head
rows, its ledgers' record fingerprints.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from fedmodel.config import TaskSettings

# A label that is a whole number as written: a JSON or Parquet integer, or
# a text of ASCII digits ("007" too; "3.0" and "+3" are not).
_INTEGER_LABEL = re.compile(r"-?[0-9]+")


def derived_label_order(labels: Collection[str]) -> list[str]:
    """The label order of a task whose labels nobody listed: sorted.

    Whole numbers sort by value (2 before 10, where text order would give
    1, 10, 11, 2), the same number written two ways ("7", "007") by its
    text; any other set of labels sorts as text.
    """
    if labels and all(_INTEGER_LABEL.fullmatch(label) for label in labels):
        return sorted(labels, key=lambda label: (int(label), label))
    return sorted(labels)


def former_label_order(
    task: TaskSettings, label_names: Collection[str]
) -> tuple[str, ...] | None:
    """The order fedmodel gave these labels before whole numbers went by value.

    task=files' labels that `task.labels` does not list were sorted as text;
    None for any other task, whose order did not change.
    """
    if task.name != "files" or task.labels is not None:
        return None
    return tuple(sorted(label_names))
