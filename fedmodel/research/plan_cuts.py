"""The texts `task.max_length` cuts, counted for privacy-plan and simulate.

The plan runs where a simulation's files all are, so it counts the texts of
every split (`cuts_line` says them), and so does `fedmodel simulate` before
round 1; a deployed site counts its own file's in its own log, and no client
sends a count (a statistic of its records).
"""

from __future__ import annotations

import logging
from typing import Any

from fedmodel.config import RunSettings
from fedmodel.data.cut_texts import SplitCut, cut_count
from fedmodel.data.splits import TaskData
from fedmodel.model.load import load_tokenizer

log = logging.getLogger(__name__)


def count_cuts(settings: RunSettings, task: TaskData) -> list[SplitCut]:
    """Count each split's texts the run cuts, with the model's own tokenizer."""
    server_held = "validation" if settings.task.validation_file else "transfer"
    named = [
        ("training", task.train),
        ("test", task.test),
        (server_held, task.transfer),
    ]
    splits = [(name, split) for name, split in named if split is not None]
    max_length = settings.task.max_length
    log.info(
        "counting the texts task.max_length %d cuts: %s",
        max_length,
        ", ".join(f"{len(split):,} {name}" for name, split in splits),
    )
    tokenizer = load_tokenizer(settings.model)
    return [
        SplitCut(
            split=name,
            cut=cut_count(tokenizer, split["text"], max_length=max_length),
            texts=len(split),
        )
        for name, split in splits
    ]


def cuts_json(max_length: int, cuts: list[SplitCut]) -> dict[str, Any]:
    """The cut texts as `--json` gives them: the limit, and each split's counts."""
    return {
        "max_length": max_length,
        "splits": [
            {"split": cut.split, "cut": cut.cut, "texts": cut.texts} for cut in cuts
        ],
    }
