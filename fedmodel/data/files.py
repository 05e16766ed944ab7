"""The files task: a user's own labelled records, one train file per site.

Train file i is client (site) i's data and gets "site" = i; the server's own
files, the test file and `task.validation_file`, get "site" = -1. Labels are
compared as strings (a JSON 3 and a CSV "3" are the same label; so are a
Parquet 3.0 and 3). The labels' descriptions are read with the other files
(`label_descriptions.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets

from fedmodel.config import TaskSettings
from fedmodel.config.wording import first_ten, plural
from fedmodel.data.file_cells import (
    label_cells,
    record_lines,
    require_column,
    starting_lines,
    text_cells,
)
from fedmodel.data.file_formats import ROW_CONVENTION, read_table
from fedmodel.data.file_roles import check_named_files
from fedmodel.data.label_descriptions import described_labels, read_descriptions
from fedmodel.data.label_form import composed, composed_labels
from fedmodel.data.label_order import derived_label_order
from fedmodel.data.record_labels import FileRecords, refuse_record_labels
from fedmodel.data.splits import TaskData, build_split
from fedmodel.errors import FedmodelError

SERVER_SITE = -1
MIN_LABELS = 2


def load_files(task: TaskSettings, *, seed: int) -> TaskData:
    """Load and validate `task.train_files` (one per site) and `task.test_file`.

    Labels are `task.labels` when given, in its order, else the union of the
    labels of the train files and `task.validation_file`, sorted (by value
    where every label is a whole number): the test split chooses no class. A
    test record whose label is no class stays in the test split, an error to
    every score (`_test_split`). The transfer split is `task.validation_file`
    (records the server holds), None without one. `seed` is unused (the
    files are taken as they are). Its `file_sha256` is that of the bytes each
    file's records were parsed from.
    """
    del seed
    test_file = check_named_files(task)
    read: dict[str, str] = {}
    train = [
        _read_records(Path(name), task=task, key=f"task.train_files[{i}]", read=read)
        for i, name in enumerate(task.train_files)
    ]
    test = _read_records(Path(test_file), task=task, key="task.test_file", read=read)
    held: list[FileRecords] = []  # the server's own labelled records, if any
    if task.validation_file:
        key = "task.validation_file"
        path = Path(task.validation_file)
        held.append(_read_records(path, task=task, key=key, read=read))
        _check_server_labels(held[0])
    described = read_descriptions(task)
    label_names = _checked_label_names(
        task, train, held=held, test=test, described=described
    )
    index = {name: i for i, name in enumerate(label_names)}
    train_split = build_split(
        [text for records in train for text in records.texts],
        [index[label] for records in train for label in records.labels],
        label_names=label_names,
        sites=[site for site, records in enumerate(train) for _ in records.texts],
    )
    test_split = _test_split(test, label_names=label_names)
    transfer = None
    if held:
        transfer = build_split(
            held[0].texts,
            [index[label] for label in held[0].labels],
            label_names=label_names,
            sites=[SERVER_SITE] * len(held[0].texts),
        )
    return TaskData(
        train=train_split,
        test=test_split,
        transfer=transfer,
        label_names=label_names,
        file_sha256=read,
        label_descriptions=described,
    )


def load_site_file(
    path: Path, *, task: TaskSettings, label_names: Sequence[str], key: str
) -> datasets.Dataset:
    """One site's own records in a deployment, checked like a train file.

    Every label must be one of `label_names` (the federation's `task.labels`);
    `key` names where the path came from, for error messages.
    """
    records = _read_records(path, task=task, key=key, at_site=True)
    index = {composed(name): i for i, name in enumerate(label_names)}
    for row, label in enumerate(records.labels, start=1):
        if label not in index:
            raise FedmodelError(
                f"{key}: file {path}, row {row} ({ROW_CONVENTION})"
                f"{starting_lines(records.lines, [row])}, column "
                f"{task.label_column!r}: label {label!r} is not one of the "
                f"federation's labels {first_ten(list(label_names))}; fix the row or "
                "ask the server operator to add the label to task.labels"
            )
    return build_split(
        records.texts,
        [index[label] for label in records.labels],
        label_names=label_names,
    )


def _test_split(test: FileRecords, *, label_names: Sequence[str]) -> datasets.Dataset:
    """The test file's split, each record kept, whatever its label.

    A label that is no class of the model (`label_names`) gets an id past
    them: its feature lists such labels after the classes, sorted. The model
    never predicts one, so each such record is an error to the accuracy and
    macro-F1, and out of the loss, which it has none of.
    """
    classes = set(label_names)
    others = derived_label_order(set(test.labels) - classes)
    names = [*label_names, *others]
    index = {name: i for i, name in enumerate(names)}
    return build_split(
        test.texts,
        [index[label] for label in test.labels],
        label_names=names,
        sites=[SERVER_SITE] * len(test.texts),
    )


def _checked_label_names(
    task: TaskSettings,
    train: Sequence[FileRecords],
    *,
    held: Sequence[FileRecords],
    test: FileRecords,
    described: Mapping[str, str] | None,
) -> tuple[str, ...]:
    """The task's labels, checked against every file that names them.

    `held` holds the server's own validation file, if any. The test file
    names no class; under `task.labels` its labels must be listed too.
    `described` is the descriptions file as read (`read_descriptions`).
    """
    server = [*held, test]
    if task.labels is None:
        refuse_record_labels(
            [(f"task.train_files[{i}]", records) for i, records in enumerate(train)],
            server_labels=_server_named_labels(server, described),
            server_texts=[text for records in server for text in records.texts],
            text_column=task.text_column,
            label_column=task.label_column,
        )
    _check_trained_labels(task, train)
    label_names = _label_names(task, [*train, *held], test=test)
    # A bad file stops the run here, with the other files, before Flower
    # starts, and leaves no run folder behind.
    described_labels(task, label_names, described)
    return label_names


def _server_named_labels(
    server: Sequence[FileRecords], described: Mapping[str, str] | None
) -> list[str]:
    """The labels the server's own files name: test, validation, descriptions."""
    labels = [label for records in server for label in records.labels]
    return labels + list(described or {})


def _read_records(
    path: Path,
    *,
    task: TaskSettings,
    key: str,
    read: dict[str, str] | None = None,
    at_site: bool = False,
) -> FileRecords:
    """The file's records; `read` gains the sha256 of the bytes they are parsed from.

    Hashed as they are read (`read_table`'s `bytes_read`), not by a read of
    its own: a file rewritten in between would be taken for the bytes the
    records came from. Without `read` (a deployed site's own file, which
    nothing compares) the bytes are not hashed. `at_site`: a deployed site's
    file, whose operator cannot set the server's task keys.
    """
    digest = hashlib.sha256()
    hashed = None if read is None else digest.update
    table = read_table(path, key=key, bytes_read=hashed)
    if read is not None:
        read[str(path)] = digest.hexdigest()
    if len(table) == 0:
        raise FedmodelError(
            f"{key}: file {path} has no rows; add records or remove the file"
        )
    if task.text_column == task.label_column:
        raise FedmodelError(
            f"task.text_column and task.label_column are both {task.text_column!r}:"
            " the model would be shown its own labels; name two different columns"
        )
    for role, column in (("text", task.text_column), ("label", task.label_column)):
        # One name serves every file of the task: the key only where none
        # of them uses the name it holds.
        fix = (
            f"rename its {role} column to {column!r}, the name the server's "
            f"task.{role}_column gives, or ask the server operator to set "
            f"task.{role}_column to the name every site's file uses"
            if at_site
            else f"rename its {role} column to {column!r}, or, where every file "
            f"of the task names it otherwise, set task.{role}_column to that name"
        )
        require_column(table, column, role=role, fix=fix, path=path, key=key)
    return FileRecords(
        key=key,
        path=path,
        texts=text_cells(table, task.text_column, path=path, key=key),
        labels=label_cells(table, task.label_column, path=path, key=key),
        lines=record_lines(table),
    )


def _check_server_labels(records: FileRecords) -> None:
    # The server keeps its start over a trained round when the start scores
    # better on this file: with one label, a start that always answers it
    # scores best, and the sites' rounds would be spent for nothing.
    held = sorted(set(records.labels))
    if len(held) < MIN_LABELS:
        raise FedmodelError(
            f"task.validation_file: file {records.path} holds only the "
            f"{plural(len(held), 'label')} {held}: the server fits its start and "
            "picks the round to keep on it, and on one label a model that always "
            "answers it scores best. "
            f"Give records of at least {MIN_LABELS} labels, or null for none"
        )


def _check_trained_labels(task: TaskSettings, train: Sequence[FileRecords]) -> None:
    """Refuse training files that hold fewer than MIN_LABELS labels between them.

    Only their records teach the model: a label that only the server's files
    (validation, test) or task.labels hold is one it never learns, and the
    sites' budgets would be spent on a classifier of one label. A deployment's
    server lists no training files: its sites hold them.
    """
    trained = {label for records in train for label in records.labels}
    if not train or len(trained) >= MIN_LABELS:
        return
    raise FedmodelError(
        "the training files (task.train_files) "
        f"{first_ten([str(records.path) for records in train])} hold only the "
        f"{plural(len(trained), 'label')} {sorted(trained)} in column "
        f"{task.label_column!r}: a classifier trained on them learns no other, "
        "whatever task.labels, task.validation_file or task.test_file hold. Add "
        "records of at least one other label to a training file"
    )


def _label_names(
    task: TaskSettings, files: Sequence[FileRecords], *, test: FileRecords
) -> tuple[str, ...]:
    """`task.labels`, every file's labels in it; else the labels of `files`.

    The test file's labels are checked against `task.labels`, never added.
    """
    if task.labels is None:
        return tuple(derived_label_order({lab for r in files for lab in r.labels}))
    names = list(composed_labels(task.labels))
    if len(names) < MIN_LABELS or len(set(names)) != len(names):
        raise FedmodelError(
            f"task.labels must list at least {MIN_LABELS} labels, none repeated (a "
            f"classifier needs two or more), got {names}"
        )
    known = set(names)
    for records in [*files, test]:
        for row, label in enumerate(records.labels, start=1):
            if label not in known:
                raise FedmodelError(
                    f"{records.key}: file {records.path}, row {row} "
                    f"({ROW_CONVENTION}){starting_lines(records.lines, [row])}, column "
                    f"{task.label_column!r}: label {label!r} is not in task.labels "
                    f"{first_ten(names)}; add it to task.labels or fix the row"
                )
    return tuple(names)
