"""The splits a task provides, and how they are built and capped.

Every split is a `datasets.Dataset` with a "text" (str) column and a "label"
column whose feature is a `ClassLabel` carrying the task's label names, so a
partition or a client split still knows what its label indices mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import datasets
import numpy as np

from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.errors import FedmodelError


@dataclass(frozen=True)
class TaskData:
    """The records of one task: client-side train, server-side test and transfer.

    `train` and `test` have the columns "text" (str) and "label" (int, an index
    into `label_names`); the files task adds "site" (int, the train file's index,
    -1 for the server's test file). `transfer` is a split no client holds, for
    distillation on the server; it is None where the task has none. The test
    split chooses no class: its labels that are none of `label_names` (the
    files task's) get ids past them, named after them in its feature, and
    every score counts their records as errors. `file_sha256` is the sha256
    of the bytes each user's file was read from, by its path (`str(Path)`);
    the shipped tasks have none. `label_descriptions` is
    `task.label_descriptions`' file as read with the task (label:
    description, `read_descriptions`), None without the key: the server's
    checks, head start and export take it from here, not from the file.
    """

    train: datasets.Dataset
    test: datasets.Dataset
    transfer: datasets.Dataset | None
    label_names: tuple[str, ...]
    file_sha256: Mapping[str, str] = field(default_factory=dict)
    label_descriptions: Mapping[str, str] | None = None

    @property
    def has_sites(self) -> bool:
        """Whether the records name the site (train file) each came from."""
        return SITE_COLUMN in self.train.column_names


def build_split(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    label_names: Sequence[str],
    sites: Sequence[int] | None = None,
) -> datasets.Dataset:
    """Build one split from parallel lists of texts, label indices and sites."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    columns: dict[str, list[object]] = {"text": list(texts), "label": list(labels)}
    features = {
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(label_names)),
    }
    if sites is not None:
        if len(sites) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(sites)} sites")
        columns[SITE_COLUMN] = list(sites)
        features[SITE_COLUMN] = datasets.Value("int64")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def cap_rows(
    split: datasets.Dataset, *, limit: int | None, seed: int, key: str
) -> datasets.Dataset:
    """Keep a seeded random subset of at most `limit` rows, in their original order.

    `key` names the config key the limit came from, for the error message.
    """
    if limit is None:
        return split
    if isinstance(limit, bool) or limit < 1:
        raise FedmodelError(
            f"{key} must be a positive integer or null, got {limit!r}: set it to "
            "null to keep every record"
        )
    if limit >= len(split):
        return split
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(split), size=limit, replace=False))
    return split.select(keep.tolist())


def label_names_of(split: datasets.Dataset) -> tuple[str, ...]:
    """Return the label names stored in a split's "label" feature.

    Raises ValueError for a dataset built without a `ClassLabel` label column,
    which is a programming error rather than a user's.
    """
    feature = split.features.get("label")
    if not isinstance(feature, datasets.ClassLabel):
        raise ValueError(
            "the dataset's 'label' column is not a ClassLabel; build splits with "
            f"fedmodel.data.splits.build_split (features: {split.features})"
        )
    return tuple(feature.names)


def held_label_names(*splits: datasets.Dataset) -> set[str]:
    """The names of the labels the records of `splits` carry.

    By each split's own feature: the test split's names labels past the
    model's classes too.
    """
    return {label_names_of(split)[i] for split in splits for i in split.unique("label")}
