"""One client's records: its partition, all trained on unless some are held out."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import datasets
import numpy as np

from fedmodel.config import PartitionSettings, RunSettings, TaskSettings
from fedmodel.data.canaries import canary_splits, with_canaries
from fedmodel.data.file_digest import FileVersion
from fedmodel.data.file_roles import check_files_kept
from fedmodel.data.partition import partition_clients
from fedmodel.data.splits import TaskData
from fedmodel.data.tasks import load_task, task_files_version
from fedmodel.errors import FedmodelError


def split_client_data(
    partition: datasets.Dataset,
    *,
    client_id: int,
    val_fraction: float,
    seed: int,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split one client's partition into (train, val), seeded per client.

    The validation split holds round(n * val_fraction) records, at least one when
    `val_fraction` > 0, and is empty when it is 0. A training split smaller than
    one expected batch is fine: DP-SGD then samples at rate 1, so every step
    takes all of its records (`privacy.sampling.sample_rate_for`).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise FedmodelError(f"task.val_fraction must be in [0, 1), got {val_fraction}")
    total = len(partition)
    if total == 0:
        raise FedmodelError(
            f"client {client_id} holds no records; use fewer clients, a larger "
            "partition.alpha or partition.min_partition_size, or check its data file"
        )
    n_val = round(total * val_fraction)
    if val_fraction > 0:
        n_val = min(max(n_val, 1), total - 1)
    order = np.random.default_rng([seed, client_id]).permutation(total)
    val = partition.select(np.sort(order[:n_val]).tolist())
    train = partition.select(np.sort(order[n_val:]).tolist())
    return train, val


def load_client_data(
    settings: RunSettings, client_id: int
) -> tuple[datasets.Dataset, datasets.Dataset, tuple[str, ...]]:
    """Load one client's (train, val, label_names) for a run.

    The task is loaded and partitioned once per process for each distinct
    (task, partition, num_clients, seed) and version of the task's files
    (`task_files_version`), and shared by every client simulated in that
    process: a file changed since is read and dealt again. The audited
    client's training split also holds the `audit.canaries` planted
    canaries, when asked for.
    """
    read = client_data_read(settings, client_id)
    return read.train, read.val, read.label_names


@dataclass(frozen=True)
class ClientRead:
    """One client's records as `load_client_data` gives them, and their files.

    `file_sha256` is the sha256 of the bytes of each user's file (`task=files`)
    the records were parsed from, by its path (`str(Path)`), hashed in the
    read that dealt them: a simulated client compares them with the run's
    (`client/task_files_read.py`) without a read of its own, and a process whose
    cache holds the read hashes nothing again.
    """

    train: datasets.Dataset
    val: datasets.Dataset
    label_names: tuple[str, ...]
    file_sha256: Mapping[str, str]


def client_data_read(settings: RunSettings, client_id: int) -> ClientRead:
    """Load one client's records, as `load_client_data`, with their files' sha256."""
    if not 0 <= client_id < settings.num_clients:
        raise FedmodelError(
            f"client_id {client_id} is out of range for num_clients="
            f"{settings.num_clients} (ids 0..{settings.num_clients - 1})"
        )
    key = json.dumps(
        {
            "task": dataclasses.asdict(settings.task),
            "partition": dataclasses.asdict(settings.partition),
            "num_clients": settings.num_clients,
            "seed": settings.seed,
        },
        sort_keys=True,
    )
    partitions, label_names, file_sha256 = _partitioned_task(
        key, task_files_version(settings.task)
    )
    train, val = client_records(
        settings, client_id, partitions=partitions, num_labels=len(label_names)
    )
    return ClientRead(train, val, label_names, file_sha256)


def client_records(
    settings: RunSettings,
    client_id: int,
    *,
    partitions: Sequence[datasets.Dataset],
    num_labels: int,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """One client's (train, val) from the task's partitions, as a run builds them.

    For a caller that loaded the task itself (`fedmodel privacy-plan`); the
    partitions are its `dealt_to_clients`.
    """
    train, val = split_client_data(
        partitions[client_id],
        client_id=client_id,
        val_fraction=settings.task.val_fraction,
        seed=settings.seed,
    )
    if settings.audit.canaries and client_id == settings.audit.client:
        planted, _ = canary_splits(
            settings, client_records=partitions[client_id], num_labels=num_labels
        )
        train = with_canaries(train, planted)
    return train, val


@functools.lru_cache(maxsize=4)
def _partitioned_task(
    key: str, versions: tuple[FileVersion, ...]
) -> tuple[tuple[datasets.Dataset, ...], tuple[str, ...], Mapping[str, str]]:
    """Partitions, label names and files' sha256 for a JSON key.

    `versions` is in the key alone. The key is JSON since settings lists are
    unhashable.
    """
    raw = json.loads(key)
    task = TaskSettings(**raw["task"])
    partition = PartitionSettings(**raw["partition"])
    data = load_task(task, seed=raw["seed"])
    partitions = dealt_to_clients(
        data,
        task=task,
        partition=partition,
        num_clients=raw["num_clients"],
        seed=raw["seed"],
    )
    return tuple(partitions), data.label_names, data.file_sha256


def dealt_to_clients(
    data: TaskData,
    *,
    task: TaskSettings,
    partition: PartitionSettings,
    num_clients: int,
    seed: int,
) -> list[datasets.Dataset]:
    """The loaded task's training split dealt to the clients, as every run deals it.

    The one path for a run's clients and `fedmodel privacy-plan`'s, so both
    refuse a cap that empties a client's file (`check_files_kept`).
    """
    check_files_kept(task, partition, train=data.train)
    return partition_clients(
        data.train, partition=partition, num_clients=num_clients, seed=seed
    )
