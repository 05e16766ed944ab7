"""Warnings about a task's labels, which the server gives once per run."""

from __future__ import annotations

import logging
from collections import defaultdict

from fedmodel.data.splits import TaskData

logger = logging.getLogger(__name__)


def warn_similar_labels(data: TaskData) -> None:
    """Name labels that differ only in letter case or spaces, once per run.

    They are different classes to the model (`Cardiology` and `cardiology`
    from two sites' exports split one class in two), and nothing else would
    say so; they may also be meant as two, so the run goes on.
    """
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for name in data.label_names:
        groups[" ".join(name.split()).casefold()].append(name)
    similar = [names for names in groups.values() if len(names) > 1]
    if similar:
        logger.warning(
            "%d group(s) of labels differ only in letter case or spaces, and the "
            "model learns each label as a class of its own: %s. If they mean one "
            "class, write it one way in every file",
            len(similar),
            "; ".join(" / ".join(repr(n) for n in names) for names in similar[:5])
            + (" ..." if len(similar) > 5 else ""),
        )


def warn_test_only_labels(data: TaskData) -> None:
    """Name the test split's labels that no training record has, once per run.

    Only where the server holds the training records (a simulation): in a
    deployment they stay at the sites, and the server cannot know.
    """
    if len(data.train) == 0:
        return
    trained = set(data.train["label"])
    if data.transfer is not None:
        trained |= set(data.transfer["label"])
    unseen = sorted({data.label_names[i] for i in set(data.test["label"]) - trained})
    if unseen:
        logger.warning(
            "%d label(s) of the test file no training record has, so the model "
            "cannot learn them and every test record of them counts as an "
            "error: %s. Add training records of them, or leave them out of the "
            "test file",
            len(unseen),
            unseen[:10] + (["..."] if len(unseen) > 10 else []),
        )
