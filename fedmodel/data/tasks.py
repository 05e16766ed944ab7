"""The task registry: which records a run uses, looked up by `task.name`."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Protocol

from fedmodel.config import TaskSettings
from fedmodel.data.bank import load_bank
from fedmodel.data.file_digest import FileVersion, file_version
from fedmodel.data.files import load_files
from fedmodel.data.hospital import load_hospital
from fedmodel.data.label_descriptions import read_descriptions
from fedmodel.data.splits import TaskData, cap_rows
from fedmodel.errors import FedmodelError


class TaskLoader(Protocol):
    """Loads one task's splits, uncapped."""

    def __call__(self, task: TaskSettings, *, seed: int) -> TaskData:
        """Load the splits of `task`, seeded where the task splits randomly."""
        ...


TASKS: dict[str, TaskLoader] = {
    "bank": load_bank,
    "hospital": load_hospital,
    "files": load_files,
}


def load_task(task: TaskSettings, *, seed: int) -> TaskData:
    """Load the task named by `task.name`, then apply the example caps.

    `task.max_train_examples` and `task.max_test_examples`, when not null, keep
    a seeded random subset (not stratified) of the train and test splits; the
    transfer split is not capped. `task.split_seed`, when set, seeds the splits
    and caps instead of `seed`, so runs with different seeds share a test set.

    Read once a process for each version of the files the task names
    (`task_files_version`): `fedmodel simulate`'s checks before Flower and
    its ServerApp, run in the same process, share one read, and a file
    changed since is read again. A fresh process (`flwr run`'s ServerApp, a
    deployment's) reads them anew. `task.label_descriptions` is one of them:
    read here, for every task, into `TaskData.label_descriptions`.
    """
    key = json.dumps(dataclasses.asdict(task), sort_keys=True)
    return _loaded(key, seed, task_files_version(task))


def task_files_version(task: TaskSettings) -> tuple[FileVersion, ...]:
    """The version of each data file `task` names, in the order it names them."""
    named = [
        *task.train_files,
        task.test_file,
        task.validation_file,
        task.label_descriptions,
    ]
    return tuple(file_version(Path(name)) for name in named if name)


@functools.lru_cache(maxsize=4)
def _loaded(key: str, seed: int, versions: tuple[FileVersion, ...]) -> TaskData:
    """The task of a JSON key (settings lists are unhashable); `versions` keys alone.

    A read that fails is not kept: each start that asks is refused anew.
    """
    task = TaskSettings(**json.loads(key))
    if task.split_seed is not None:
        seed = task.split_seed
    loader = TASKS.get(task.name)
    if loader is None:
        raise FedmodelError(
            f"unknown task.name {task.name!r}; known tasks: {sorted(TASKS)}"
        )
    data = loader(task, seed=seed)
    described = data.label_descriptions  # the files task reads it for its checks
    if described is None:
        described = read_descriptions(task)
    return TaskData(
        train=cap_rows(
            data.train,
            limit=task.max_train_examples,
            seed=seed,
            key="task.max_train_examples",
        ),
        test=cap_rows(
            data.test,
            limit=task.max_test_examples,
            seed=seed + 1,
            key="task.max_test_examples",
        ),
        transfer=data.transfer,
        label_names=data.label_names,
        file_sha256=data.file_sha256,
        label_descriptions=described,
    )
