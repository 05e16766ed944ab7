"""Splitting the training records across clients, by `partition.name`.

The partitioners are flwr-datasets'; this module picks one from the config,
checks what it cannot, and turns its failures into messages about the config.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import datasets

from fedmodel.config import PartitionSettings
from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.config.wording import first_ten, plural
from fedmodel.data.splits import held_label_names, label_names_of
from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    # flwr-datasets is imported where a partitioner is built: importing it
    # takes seconds (plotting libraries), which a deployed site, whose
    # ClientApp starts afresh each round and never partitions, should not pay.
    from flwr_datasets.partitioner import Partitioner

GROUP_COLUMN = "group"

PartitionBuilder = Callable[
    [datasets.Dataset, PartitionSettings, int, int],
    "tuple[Partitioner, datasets.Dataset]",
]


def partition_clients(
    train: datasets.Dataset,
    *,
    partition: PartitionSettings,
    num_clients: int,
    seed: int,
) -> list[datasets.Dataset]:
    """Split `train` into `num_clients` disjoint partitions; client i gets item i.

    "iid": a seeded shuffle cut into equal shards. "dirichlet": label skew, each
    label's records spread over clients by Dirichlet(`partition.alpha`), redrawn
    until every client has `partition.min_partition_size` records. "natural":
    one client per distinct value of `partition.column` (clients in sorted value
    order; with no column set, the files task's "site" column), or per group of
    `partition.label_groups` (a map label name -> group name, added as a "group"
    column).
    """
    builder = PARTITIONERS.get(partition.name)
    if builder is None:
        raise FedmodelError(
            f"unknown partition.name {partition.name!r}; known partitions: "
            f"{sorted(PARTITIONERS)}"
        )
    if num_clients < 1:
        raise FedmodelError(f"num_clients must be >= 1, got {num_clients}")
    if len(train) < num_clients:
        raise FedmodelError(
            f"{len(train)} training records cannot be split across {num_clients} "
            "clients; use fewer clients or more data (task.max_train_examples)"
        )
    partitioner, dataset = builder(train, partition, num_clients, seed)
    partitioner.dataset = dataset
    with warnings.catch_warnings():
        # Dirichlet warns on every redraw; a failure is reported below instead.
        warnings.simplefilter("ignore", UserWarning)
        try:
            return [partitioner.load_partition(i) for i in range(num_clients)]
        except ValueError as exc:
            if partition.name != "dirichlet":
                raise
            raise FedmodelError(
                f"no Dirichlet split of {len(train)} records over {num_clients} "
                f"clients gives each client at least partition.min_partition_size="
                f"{partition.min_partition_size} records with partition.alpha="
                f"{partition.alpha} ({exc}); raise partition.alpha, lower "
                "partition.min_partition_size, use fewer clients or more data"
            ) from exc


def _iid(
    train: datasets.Dataset, partition: PartitionSettings, num_clients: int, seed: int
) -> tuple[Partitioner, datasets.Dataset]:
    from flwr_datasets.partitioner import IidPartitioner

    # IidPartitioner cuts contiguous shards, so shuffle first.
    shuffled = train.shuffle(seed=seed)
    return IidPartitioner(num_partitions=num_clients), shuffled


def _dirichlet(
    train: datasets.Dataset, partition: PartitionSettings, num_clients: int, seed: int
) -> tuple[Partitioner, datasets.Dataset]:
    if partition.alpha <= 0:
        raise FedmodelError(
            f"partition.alpha must be positive, got {partition.alpha}; smaller "
            "values give more label skew (0.1 strong, 100 nearly iid)"
        )
    needed = partition.min_partition_size * num_clients
    if needed > len(train):
        raise FedmodelError(
            f"partition.min_partition_size={partition.min_partition_size} for each "
            f"of {num_clients} clients needs {needed} records, but there are "
            f"{len(train)}; lower it or use fewer clients"
        )
    from flwr_datasets.partitioner import DirichletPartitioner

    partitioner = DirichletPartitioner(
        num_partitions=num_clients,
        partition_by="label",
        alpha=partition.alpha,
        min_partition_size=partition.min_partition_size,
        seed=seed,
    )
    return partitioner, train


def _natural(
    train: datasets.Dataset, partition: PartitionSettings, num_clients: int, seed: int
) -> tuple[Partitioner, datasets.Dataset]:
    del seed  # a natural split is fixed by the data
    if partition.label_groups is not None and partition.column is not None:
        raise FedmodelError(
            f"partition.column={partition.column!r} and partition.label_groups are "
            "both set; set one of them to null"
        )
    if partition.label_groups is not None:
        train = _with_label_groups(train, partition.label_groups)
        column = GROUP_COLUMN
    elif partition.column is not None:
        column = partition.column
    elif SITE_COLUMN in train.column_names:
        column = SITE_COLUMN
    else:
        raise FedmodelError(
            "partition 'natural' needs partition.column (a column of the records, "
            f"here one of {train.column_names}) or partition.label_groups (a map "
            "label name -> group name)"
        )
    if column not in train.column_names:
        raise FedmodelError(
            f"partition.column={column!r} is not a column of the training records; "
            f"columns: {train.column_names}"
        )
    unique = train.unique(column)
    if None in unique:
        raise FedmodelError(
            f"partition.column={column!r} is empty for some training records; "
            "give every record a value"
        )
    values = sorted(unique)
    if len(values) != num_clients:
        if column == SITE_COLUMN and partition.column in (None, SITE_COLUMN):
            # A files task: the groups are its train files, in the order listed.
            raise FedmodelError(
                f"task.train_files lists {len(values)} files, one client each "
                f"(partition=natural, the default for task=files), but "
                f"num_clients={num_clients}: set num_clients={len(values)}, or "
                "leave it out (task=files counts the files)"
            )
        raise FedmodelError(
            f"partition 'natural' on column {column!r} finds {len(values)} distinct "
            f"groups {first_ten(values)}, but num_clients={num_clients}; one client "
            f"per group needs num_clients={len(values)}"
        )
    from flwr_datasets.partitioner import NaturalIdPartitioner

    return NaturalIdPartitioner(partition_by=column), train


def _with_label_groups(
    train: datasets.Dataset, label_groups: dict[str, str]
) -> datasets.Dataset:
    names = label_names_of(train)
    unknown = sorted(set(label_groups) - set(names))
    if unknown:
        raise FedmodelError(
            f"partition.label_groups has {plural(len(unknown), 'key')} {unknown[:5]} "
            f"that {plural(len(unknown), 'is not a label', 'are not labels')} of "
            f"this task; labels are e.g. {list(names[:5])}"
        )
    ungrouped = sorted(held_label_names(train) - set(label_groups))
    if ungrouped:
        raise FedmodelError(
            f"partition.label_groups gives no group for "
            f"{plural(len(ungrouped), 'label')} {ungrouped[:5]}"
            f"{' ...' if len(ungrouped) > 5 else ''} ({len(ungrouped)} in all); "
            "map every label to a group"
        )
    groups = [label_groups[names[label]] for label in train["label"]]
    if GROUP_COLUMN in train.column_names:
        train = train.remove_columns(GROUP_COLUMN)
    return train.add_column(GROUP_COLUMN, groups)


PARTITIONERS: dict[str, PartitionBuilder] = {
    "iid": _iid,
    "dirichlet": _dirichlet,
    "natural": _natural,
}
