"""The labels' descriptions (`task.label_descriptions`), read and matched to labels.

What the head's zero-shot start embeds for each label: its name, or its
description from a table with the label column and a `description` column.
The table is read once a process, with the task's files (`data/tasks.py`
keeps it as `TaskData.label_descriptions`), and the functions here take it
as read; the files task checks it with its files, so a bad one stops the run
before Flower starts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from fedmodel.config import TaskSettings
from fedmodel.config.wording import first_ten, plural
from fedmodel.data.file_cells import label_cells, require_column, text_cells
from fedmodel.data.file_formats import ROW_CONVENTION, read_table
from fedmodel.data.label_likeness import class_written
from fedmodel.errors import FedmodelError

logger = logging.getLogger(__name__)

DESCRIPTIONS_KEY = "task.label_descriptions"
# task.label_descriptions: the column holding each label's description.
DESCRIPTION_COLUMN = "description"


def class_descriptions(
    task: TaskSettings,
    label_names: Sequence[str],
    described: Mapping[str, str] | None,
) -> dict[str, str] | None:
    """Each class's description, label: text, for the export; None without any."""
    if task.label_descriptions is None or described is None:
        return None
    texts = described_labels(task, label_names, described)
    return dict(zip(label_names, texts, strict=True))


def warn_unused_descriptions(
    task: TaskSettings,
    label_names: Sequence[str],
    described: Mapping[str, str] | None,
) -> None:
    """Name the labels `task.label_descriptions` describes that are no class.

    Most often a typo (`Asthma` for `asthma`, `3.0` for `3`) or a code no
    site uses: its description is never used, and nothing else would say so.
    A label that writes a class another way (case, spacing, a number's form)
    is named with that class. Not refused: a file shared by several tasks may
    describe more labels than one task has. The server and the plan say it
    once per run. `described` is the file as read (`read_descriptions`).
    """
    classes = set(label_names)
    unused = [name for name in described or {} if name not in classes]
    if not unused:
        return
    logger.warning(
        "%s: file %s describes %d %s the task has no class of, so %s unused: "
        "%s. Write a class's row as the train files write its label (case, "
        "spaces, a number's form); a file shared with other tasks may describe "
        "more labels, as meant",
        DESCRIPTIONS_KEY,
        task.label_descriptions,
        len(unused),
        plural(len(unused), "label"),
        plural(len(unused), "its description is", "their descriptions are"),
        _with_classes(unused, label_names, most=5),
    )


def _with_classes(names: Sequence[str], classes: Sequence[str], *, most: int) -> str:
    """The first `most` of `names`, each beside the class it writes another way.

    `'7' (the class '007'?)`: a description for a class written as the train
    files do not write it (`class_written`), said where the file is refused
    and where it is warned of alike.
    """
    shown = []
    for name in names[:most]:
        meant = class_written(name, classes)
        shown.append(f"{name!r} (the class {meant!r}?)" if meant else repr(name))
    return ", ".join(shown) + (" ..." if len(names) > most else "")


def described_labels(
    task: TaskSettings,
    label_names: Sequence[str],
    described: Mapping[str, str] | None,
) -> tuple[str, ...]:
    """What the head's zero-shot start embeds for each label, in label order.

    The label's name, or its description in `task.label_descriptions`, from
    the file as read (`read_descriptions`; None: the task has none). It may
    describe labels the task does not have; every label the task has needs
    exactly one description.
    """
    if task.label_descriptions is None or described is None:
        return tuple(label_names)
    key, path = DESCRIPTIONS_KEY, Path(task.label_descriptions)
    missing = [name for name in label_names if name not in described]
    if missing:
        others = sorted(set(described) - set(label_names))
        raise FedmodelError(
            f"{key}: file {path} has no description of the "
            f"{plural(len(missing), 'label')} "
            f"{first_ten(missing)}"
            + (
                f" (it describes {_with_classes(others, label_names, most=10)}, "
                "which the task has not; labels are matched as written, case "
                "counting)"
                if others
                else ""
            )
            + "; add a row for each label"
        )
    return tuple(described[name] for name in label_names)


def read_descriptions(task: TaskSettings) -> dict[str, str] | None:
    """`task.label_descriptions`' label: description; None where it names no file.

    Refuses a label described twice.
    """
    if task.label_descriptions is None:
        return None
    key, path = DESCRIPTIONS_KEY, Path(task.label_descriptions)
    table = read_table(path, key=key)
    # Not "or set task.label_column": that key names the data files' label
    # column too, which the descriptions file must share.
    for role, column, fix in (
        (
            "label",
            task.label_column,
            f"rename its label column to {task.label_column!r}: it names each "
            "label in the column the data files name theirs in "
            "(task.label_column)",
        ),
        (
            "description",
            DESCRIPTION_COLUMN,
            f"rename its description column to {DESCRIPTION_COLUMN!r}",
        ),
    ):
        require_column(table, column, role=role, fix=fix, path=path, key=key)
    labels = label_cells(table, task.label_column, path=path, key=key)
    texts = text_cells(
        table, DESCRIPTION_COLUMN, role="description", path=path, key=key
    )
    described: dict[str, tuple[int, str]] = {}
    for row, (name, text) in enumerate(zip(labels, texts, strict=True), start=1):
        if name in described:
            raise FedmodelError(
                f"{key}: file {path} describes label {name!r} twice, at rows "
                f"{described[name][0]} and {row} ({ROW_CONVENTION}); keep one"
            )
        described[name] = (row, text.strip())
    return {name: text for name, (_, text) in described.items()}
