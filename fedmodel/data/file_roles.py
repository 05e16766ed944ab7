"""Each file of a files task plays one role, and a site's file is one client's.

The roles: a site's train file, the server's test file, its own
`task.validation_file` and `distill.transfer_file`. A file named in two
roles would quietly break what the run reports:

- a train file listed twice makes two clients of one site's records, each
  spending its own budget on them: every record spends twice the epsilon shown;
- a train file as `task.validation_file` hands that site's records to the
  server, which fits its start on them and weighs it against the last round
  on them, without noise;
- a train file as `task.test_file` scores the model on records it trained on;
- the test file as `task.validation_file` lets the test split choose;
- a train file as `distill.transfer_file` hands that site's texts to the
  server, which distils the student on them without noise;
- the test file as `distill.transfer_file` trains the student on the texts
  it is then scored on.

Paths are compared once resolved (links followed), so `./a.csv` and `a.csv`
are one file. A copy under another name is not refused: where files share
texts, the server names them in a warning once per run
(`fedmodel.data.shared_texts`).

A site's file is one client's where the files are the clients
(`partition=natural`, the task's default): client i holds
`task.train_files[i]` (`client_file`), a cap that leaves a file no record
is refused (`check_files_kept`), and any other partition, which pools the
files, is named (`warn_pooled_files`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.config import PartitionSettings, RunSettings, TaskSettings
from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

_TRAIN, _TEST, _VALIDATION = "train", "test", "validation"

# What each pair of roles would do, keyed by (first role, second role) in the
# order the files are listed: train files, then test, then validation.
_WHY = {
    (_TRAIN, _TRAIN): (
        "each site's records must be one client's: listed twice they are two "
        "clients' and spend twice the epsilon shown; list each file once"
    ),
    (_TRAIN, _TEST): (
        "the test file must hold records no site trains on; give a held-out file"
    ),
    (_TRAIN, _VALIDATION): (
        "task.validation_file is the server's own records, used without noise, "
        "so a site's file there gives the server that site's records; give a "
        "file no site holds, or null"
    ),
    (_TEST, _VALIDATION): (
        "the server fits its start and picks the round to keep by "
        "task.validation_file, and the test split never chooses anything; "
        "give another file, or null"
    ),
}


def check_named_files(task: TaskSettings) -> str:
    """The test file, once the files are named and each plays one role.

    Raises if a file is missing from its key or named in two roles (see the
    module's list).
    """
    if not task.train_files and task.labels is None:
        raise FedmodelError(
            "task.train_files is empty: list one CSV / TSV / JSONL / Parquet file per "
            "site, e.g. task.train_files='[site0.csv,site1.csv]' (in a deployment "
            "the sites hold their own files: set task.labels instead)"
        )
    if not task.test_file:
        raise FedmodelError(
            "task.test_file is not set: give the file the server evaluates on, "
            "e.g. task.test_file=test.csv"
        )
    seen: dict[Path, tuple[str, str]] = {}
    for role, key, name in _named_files(task):
        path = Path(name).resolve()
        if path in seen:
            first_role, first_key = seen[path]
            raise FedmodelError(
                f"{key}={name!r} is the same file as {first_key}: "
                f"{_WHY[first_role, role]}"
            )
        seen[path] = (role, key)
    return task.test_file


def check_transfer_file(settings: RunSettings) -> None:
    """Refuse a site's file or the test file as the server's distillation texts."""
    name = settings.distill.transfer_file
    if name is None:
        return
    why = {
        _TRAIN: (
            "the server distils the student on distill.transfer_file without "
            "noise, so a site's file there gives the server that site's texts"
        ),
        _TEST: "the student would train on the texts it is then scored on",
    }
    path = Path(name).resolve()
    for role, key, other in _named_files(settings.task):
        if role in why and Path(other).resolve() == path:
            raise FedmodelError(
                f"distill.transfer_file={name!r} is the same file as {key}: "
                f"{why[role]}; give texts the server holds itself, or null for "
                "the task's transfer split"
            )


def clients_are_files(settings: RunSettings) -> bool:
    """Whether each client of a files task holds one file (`partition=natural`)."""
    return _files_are_clients(settings.task, settings.partition)


def _files_are_clients(task: TaskSettings, part: PartitionSettings) -> bool:
    """`clients_are_files` from the task and partition alone."""
    by_site = part.column in (None, SITE_COLUMN) and part.label_groups is None
    return task.name == "files" and part.name == "natural" and by_site


def check_files_kept(
    task: TaskSettings, partition: PartitionSettings, *, train: datasets.Dataset
) -> None:
    """Refuse a cap that leaves a file, where each file is a client, no record.

    `train` is the task's training split, capped. Client i holds the i-th
    file that has records: a file all of whose records
    `task.max_train_examples` (a random subset of every file's records) left
    out would hand each later file to the client before it, while the plan
    and the logs name client i by task.train_files[i].
    """
    if not _files_are_clients(task, partition):
        return
    sites = set(train.unique(SITE_COLUMN))
    emptied = [i for i in range(len(task.train_files)) if i not in sites]
    if not emptied:
        return
    first = emptied[0]
    raise FedmodelError(
        f"task.max_train_examples={task.max_train_examples} keeps a random "
        "subset of the records of all the files together, and none of "
        f"task.train_files[{first}] ({task.train_files[first]})"
        + (f" and {len(emptied) - 1} more" if len(emptied) > 1 else "")
        + ": with each file one client (partition=natural), that client would "
        "hold no record and each file after it would go to the client before "
        "it. Raise task.max_train_examples or set it to null"
    )


def client_file(settings: RunSettings, client_id: int) -> str | None:
    """Client `client_id`'s file where `clients_are_files`; a deployment lists none."""
    files = settings.task.train_files
    held = clients_are_files(settings) and client_id < len(files)
    return files[client_id] if held else None


def warn_pooled_files(settings: RunSettings) -> None:
    """Say so when a files task's clients are not its files.

    With any partition but `natural` on the files (`partition=iid`),
    the files' records are pooled and dealt out again: each client's epsilon
    then covers its share, not one site's file. The server says it once.
    """
    task, partition = settings.task, settings.partition
    if task.name != "files" or clients_are_files(settings):
        return
    logger.warning(
        "partition=%s%s: the %d files of task.train_files are pooled and dealt "
        "out again to %d clients, so a client is not one of your sites; "
        "partition=natural makes each file one client",
        partition.name,
        f" (column {partition.column})" if partition.column else "",
        len(task.train_files),
        settings.num_clients,
    )


def _named_files(task: TaskSettings) -> Iterator[tuple[str, str, str]]:
    """(role, key, path) of each file a files task names, train files first."""
    for i, name in enumerate(task.train_files):
        yield _TRAIN, f"task.train_files[{i}]", name
    if task.test_file:
        yield _TEST, "task.test_file", task.test_file
    if task.validation_file:
        yield _VALIDATION, "task.validation_file", task.validation_file
