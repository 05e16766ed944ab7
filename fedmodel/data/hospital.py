"""ICD-10-CM clinical coding: leaf diagnosis descriptions labelled with their chapter.

The codes ship with PyPI `simple-icd-10-cm`. Each leaf code's description is a
text and its chapter (e.g. chapter 19, "Injury, poisoning and certain other
consequences of external causes") is the label. Chapters differ in size by two
orders of magnitude, so small chapters are dropped and large ones capped.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType

import numpy as np

from fedmodel.config import TaskSettings
from fedmodel.data.splits import TaskData, build_split
from fedmodel.errors import FedmodelError


def load_hospital(task: TaskSettings, *, seed: int) -> TaskData:
    """Load ICD-10-CM leaf descriptions as a chapter-classification task.

    Chapters with fewer than `task.min_per_chapter` leaves are dropped, the rest
    capped at `task.max_per_chapter` codes (seeded sample). Each chapter is then
    split (seeded, stratified by chapter) into test (`task.test_fraction`),
    transfer (`task.transfer_fraction`, None when 0) and train. A description
    shared by several codes is kept once, at its first code. Label names are the
    chapter descriptions, in chapter order.
    """
    _check_fractions(task)
    if task.max_per_chapter < 1:
        raise FedmodelError(
            f"task.max_per_chapter must be >= 1, got {task.max_per_chapter}"
        )
    by_chapter = {
        chapter: texts
        for chapter, texts in _leaf_texts_by_chapter().items()
        if len(texts) >= task.min_per_chapter
    }
    if not by_chapter:
        raise FedmodelError(
            f"task.min_per_chapter={task.min_per_chapter} drops every ICD-10-CM "
            "chapter; lower it (the default is 50)"
        )
    label_names = tuple(_chapter_description(chapter) for chapter in by_chapter)
    rng = np.random.default_rng(seed)
    parts: dict[str, tuple[list[str], list[int]]] = {
        name: ([], []) for name in ("train", "test", "transfer")
    }
    for label, texts in enumerate(by_chapter.values()):
        order = rng.permutation(len(texts))[: task.max_per_chapter]
        chosen = [texts[i] for i in order]
        n_test = round(len(chosen) * task.test_fraction)
        n_transfer = round(len(chosen) * task.transfer_fraction)
        pieces = {
            "test": chosen[:n_test],
            "transfer": chosen[n_test : n_test + n_transfer],
            "train": chosen[n_test + n_transfer :],
        }
        for name, piece in pieces.items():
            parts[name][0].extend(piece)
            parts[name][1].extend([label] * len(piece))
    splits = {
        name: build_split(texts, labels, label_names=label_names)
        for name, (texts, labels) in parts.items()
    }
    return TaskData(
        train=splits["train"],
        test=splits["test"],
        transfer=splits["transfer"] if task.transfer_fraction > 0 else None,
        label_names=label_names,
    )


def _check_fractions(task: TaskSettings) -> None:
    if not 0.0 < task.test_fraction < 1.0:
        raise FedmodelError(
            f"task.test_fraction must be in (0, 1), got {task.test_fraction}"
        )
    if not 0.0 <= task.transfer_fraction < 1.0:
        raise FedmodelError(
            f"task.transfer_fraction must be in [0, 1), got {task.transfer_fraction}"
        )
    if task.test_fraction + task.transfer_fraction >= 1.0:
        raise FedmodelError(
            f"task.test_fraction ({task.test_fraction}) + task.transfer_fraction "
            f"({task.transfer_fraction}) must be below 1 to leave training records"
        )


@functools.lru_cache(maxsize=1)
def _leaf_texts_by_chapter() -> dict[str, tuple[str, ...]]:
    """Leaf descriptions grouped by chapter id, chapters in numeric order."""
    icd = _icd_module()
    grouped: dict[str, list[str]] = {}
    seen: set[str] = set()
    for code in icd.get_all_codes(with_dots=True):
        if not icd.is_leaf(code):
            continue
        text = str(icd.get_description(code)).strip()
        if not text or text in seen:
            continue
        seen.add(text)
        chapter = str(icd.get_ancestors(code)[-1])
        grouped.setdefault(chapter, []).append(text)
    ordered = sorted(grouped, key=_chapter_order)
    return {chapter: tuple(grouped[chapter]) for chapter in ordered}


def _chapter_order(chapter: str) -> tuple[int, str]:
    # Chapter ids are "1".."22"; numeric order, not string order.
    return (int(chapter) if chapter.isdigit() else 10**6, chapter)


def _chapter_description(chapter: str) -> str:
    return str(_icd_module().get_description(chapter))


def _icd_module() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # It reads its data through the deprecated importlib.resources API.
            warnings.simplefilter("ignore", DeprecationWarning)
            import simple_icd_10_cm
    except ModuleNotFoundError as exc:
        raise FedmodelError(
            "task 'hospital' needs the PyPI package simple-icd-10-cm, which is not "
            "installed: `pip install simple-icd-10-cm==1.5.0`"
        ) from exc
    return simple_icd_10_cm
