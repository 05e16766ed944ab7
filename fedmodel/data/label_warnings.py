"""Warnings about a task's labels, which the server gives once per run."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import datasets

from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.config.wording import first_ten, plural
from fedmodel.data.splits import TaskData, label_names_of

logger = logging.getLogger(__name__)
# A whole number as an export may write it: signed, zero-padded, or with a
# zero fraction (a column of codes written as floats: `3.0`).
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+(\.0*)?")


def warn_labels(data: TaskData) -> None:
    """Every warning about a task's labels, as the server and the plan give them."""
    warn_test_only_labels(data)
    warn_untested_classes(data)
    warn_server_only_labels(data)
    warn_unheld_labels(data)
    warn_similar_labels(data)
    warn_sites_apart(data)


def warn_similar_labels(data: TaskData) -> None:
    """Name labels that differ only in case or spaces, or in how a number is written.

    They are different classes to the model (`Cardiology` and `cardiology`
    from two sites' exports, or `3` and `3.0` from a site whose export wrote
    a column of codes as floats, split one class in two), and nothing else
    would say so; they may also be meant as two, so the run goes on. Spaces
    include invisible characters (a zero-width space pasted into a cell),
    which print the two alike.
    """
    for likeness, key in (
        ("differ only in letter case, spaces or invisible characters", _case_key),
        ("are one number written two ways", _number_key),
    ):
        groups: defaultdict[object, list[str]] = defaultdict(list)
        for name in data.label_names:
            value = key(name)
            if value is not None:
                groups[value].append(name)
        similar = [names for names in groups.values() if len(names) > 1]
        if similar:
            logger.warning(
                "%d %s of labels %s, and the model learns each label as a "
                "class of its own: %s. If they mean one class, write it one way "
                "in every file",
                len(similar),
                plural(len(similar), "group"),
                likeness,
                "; ".join(" / ".join(repr(n) for n in names) for names in similar[:5])
                + (" ..." if len(similar) > 5 else ""),
            )


def _case_key(name: str) -> str:
    # Invisible format characters (a zero-width space, a soft hyphen, a BOM
    # pasted into a cell) make a label that prints as another one does.
    visible = "".join(c for c in name if unicodedata.category(c) != "Cf")
    return " ".join(visible.split()).casefold()


def _number_key(name: str) -> int | None:
    """The whole number a label writes (`3`, `3.0`, `003`), else None.

    Only whole numbers: `1.1` and `1.10` may well be two sections' codes.
    """
    return int(name.split(".")[0]) if _WHOLE_NUMBER.fullmatch(name) else None


def warn_test_only_labels(data: TaskData) -> None:
    """Name the test split's labels that no training record has, once per run.

    The labels that are no class of the model (the test split chooses none),
    with the count of their records, which every score counts as errors; and,
    where the server holds the training records (a simulation), the classes
    that no training or validation record has (task.labels lists them).
    """
    classes = len(data.label_names)
    others = sorted(_names(data.test) - set(data.label_names))
    if others:
        held = sum(label >= classes for label in data.test["label"])
        logger.warning(
            "%(count)d %(labels)s of the test file %(are)s no class of the "
            "model, as no training or validation record holds %(them)s (the "
            "test split chooses no class): %(others)s. %(held)d of its %(all)d "
            "records %(hold)s %(them)s and %(count_as)s in the test accuracy "
            "and macro-F1. %(fix)s",
            {
                "fix": _test_label_fix(others, data.label_names),
                "count": len(others),
                "labels": plural(len(others), "label"),
                "are": plural(len(others), "is", "are"),
                "them": plural(len(others), "it", "them"),
                "others": first_ten(others),
                "held": held,
                "hold": plural(held, "holds", "hold"),
                "count_as": plural(held, "counts as an error", "count as errors"),
                "all": len(data.test),
            },
        )
    if len(data.train) == 0:
        return
    trained = [data.train] if data.transfer is None else [data.train, data.transfer]
    unseen = sorted(_names(data.test) - set(others) - _names(*trained))
    if unseen:
        logger.warning(
            "%(count)d %(labels)s of the test file no training record has, so "
            "the model cannot learn %(them)s and every test record of %(them)s "
            "counts as an error: %(unseen)s. Add training records of %(them)s, "
            "or leave %(them)s out of the test file",
            {
                "count": len(unseen),
                "labels": plural(len(unseen), "label"),
                "them": plural(len(unseen), "it", "them"),
                "unseen": first_ten(unseen),
            },
        )


def warn_untested_classes(data: TaskData) -> None:
    """Name the model's classes that no record of the test file holds.

    The test scores leave them out (scikit-learn's macro-F1 averages over the
    labels answered and predicted): a file of one class scored a model that
    always answers it 1.0 on both. Only for a files task's test file; in a
    simulation only for the classes sites train (the others have their line).
    """
    if not data.has_sites:
        return
    # A deployment's server holds no site record: it names every class.
    held = _names(data.train) if len(data.train) > 0 else set(data.label_names)
    untested = [n for n in data.label_names if n in held - _names(data.test)]
    tested = len(data.label_names) - len(untested)
    if untested:
        logger.warning(
            "%d of the model's %d classes %s no record in the test file, so the "
            "test accuracy and macro-F1 score %s: %s. Add test "
            "records of each class to score them all",
            len(untested),
            len(data.label_names),
            plural(len(untested), "has", "have"),
            f"only the other {tested}" if tested else "none of them",
            first_ten(untested),
        )


def _test_label_fix(others: list[str], classes: Sequence[str]) -> str:
    """What to do about test labels no class is, naming those a class writes.

    A test file exported apart from the sites' files may write their codes
    as floats (`3.0` for `3`) or in another case: then its records count as
    errors, and adding training records of `3.0`, the advice for a label the
    sites lack, would make it a second class.
    """
    alike = {other: class_written(other, classes) for other in others}
    shown = [f"{other!r} (the class {name!r})" for other, name in alike.items() if name]
    them = plural(len(others) - len(shown), "it", "them")
    lacked = f"add training records of {them}, or leave {them} out of the test file"
    if not shown:
        return lacked[0].upper() + lacked[1:]
    fix = (
        f"{', '.join(shown[:5])}{' ...' if len(shown) > 5 else ''} "
        f"{plural(len(shown), 'is a class', 'are classes')} of the model written "
        "another way (a number written as a float or zero-padded, or another "
        "letter case or spacing): write the test file's labels as the training "
        "files write them"
    )
    return fix if len(shown) == len(others) else f"{fix}; for the others, {lacked}"


def class_written(label: str, classes: Sequence[str]) -> str | None:
    """The class that `label` writes another way (`3.0`: `3`), if one does.

    Case, spacing and invisible characters, or a number's form, as
    `warn_similar_labels` compares labels.
    """
    for key in (_number_key, _case_key):
        value = key(label)
        found = [name for name in classes if value is not None and key(name) == value]
        if found:
            return found[0]
    return None


def warn_server_only_labels(data: TaskData) -> None:
    """Name the labels of `task.validation_file` that no site's file has.

    The label set is the union of the sites' and this file's labels, so such
    a label (most often a typo, or another coding than the sites') becomes a
    class of the model and of the exported `id2label` that no site trains.
    Only in a simulation, where the server holds the sites' files too.
    """
    if not data.has_sites or len(data.train) == 0 or data.transfer is None:
        return
    unseen = sorted(_names(data.transfer) - _names(data.train))
    if unseen:
        logger.warning(
            "%(count)d %(labels)s of task.validation_file no site's file has, "
            "so no site trains %(them)s, yet the model and its export hold "
            "%(them)s as %(classes)s: %(unseen)s. If %(they)s written another "
            "way, write %(them)s as the sites' files do; if not, add site "
            "records of %(them)s or leave %(them)s out of the file",
            {
                "count": len(unseen),
                "labels": plural(len(unseen), "label"),
                "them": plural(len(unseen), "it", "them"),
                "classes": plural(len(unseen), "a class", "classes"),
                "they": plural(
                    len(unseen), "it is a site label", "they are site labels"
                ),
                "unseen": first_ten(unseen),
            },
        )


def warn_unheld_labels(data: TaskData) -> None:
    """Name the labels of `task.labels` that no file's record holds, once per run.

    Each is a class of the model and of the exported `id2label` that no site
    trains and no test record scores (a class that no site holds, or one
    written in task.labels as no file writes it). Only in a simulation of
    files, where the server holds every file's records.
    """
    if not data.has_sites or len(data.train) == 0:
        return
    splits = [data.train, data.test]
    if data.transfer is not None:
        splits.append(data.transfer)
    unheld = [name for name in data.label_names if name not in _names(*splits)]
    if unheld:
        logger.warning(
            "%(count)d %(labels)s of task.labels that no site's, test or "
            "validation record of the run holds, so no site trains %(them)s and "
            "no test record scores %(them)s, yet the model and its export hold "
            "%(them)s as %(classes)s: %(unheld)s. Leave %(them)s out of "
            "task.labels, or give the sites records of %(them)s",
            {
                "count": len(unheld),
                "labels": plural(len(unheld), "label"),
                "them": plural(len(unheld), "it", "them"),
                "classes": plural(len(unheld), "a class", "classes"),
                "unheld": first_ten(unheld),
            },
        )


def _names(*splits: datasets.Dataset) -> set[str]:
    """The names of the labels the records of `splits` carry.

    By each split's own feature: the test split's names labels past the
    model's classes too.
    """
    return {label_names_of(split)[i] for split in splits for i in set(split["label"])}


def warn_sites_apart(data: TaskData) -> None:
    """Name the train files whose labels no other file has, once per run.

    Codes in one site's export and names in another's (`I21` against
    `Myocardial infarction`) make classes that only one site trains, and the
    model then never learns that they are one. Sites that truly hold
    different classes get the same line, so the run goes on.
    """
    if not data.has_sites:
        return
    held: defaultdict[int, set[int]] = defaultdict(set)
    for site, label in zip(data.train[SITE_COLUMN], data.train["label"], strict=True):
        held[site].add(label)
    apart = [
        site
        for site, own in sorted(held.items())
        if not own & set().union(*(ls for s, ls in held.items() if s != site))
    ]
    if len(held) < 2 or not apart:
        return
    shown = ", ".join(
        f"task.train_files[{site}] "
        f"{[data.label_names[i] for i in sorted(held[site])][:5]}"
        for site in apart[:5]
    )
    logger.warning(
        "%d train %s no label with the other files: %s. If they are "
        "the same classes written another way (codes in one file, names in "
        "another), write them one way in every file; if the sites hold "
        "different classes, each is learnt from its one site",
        len(apart),
        plural(len(apart), "file shares", "files share"),
        shown + (" ..." if len(apart) > 5 else ""),
    )
