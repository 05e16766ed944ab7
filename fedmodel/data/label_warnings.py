"""Warnings about a task's labels, which the server gives once per run."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.config.wording import first_ten, plural
from fedmodel.data.label_likeness import case_key, number_key
from fedmodel.data.scored_labels import warn_test_only_labels, warn_untested_classes
from fedmodel.data.splits import TaskData, held_label_names

logger = logging.getLogger(__name__)
# Words an export writes for an empty cell, compared in any letter case. A
# blank cell and `NaN` are missing by the one rule (`MISSING_RULE`) and
# refused; these are ordinary labels, named for what a class of them learns.
_MISSING_WORDS = frozenset({"na", "n/a", "null", "none", "-"})


def warn_labels(data: TaskData) -> None:
    """Every warning about a task's labels, as the server and the plan give them."""
    warn_test_only_labels(data)
    warn_untested_classes(data)
    warn_server_only_labels(data)
    warn_unheld_labels(data)
    warn_similar_labels(data)
    warn_sites_apart(data)
    warn_missing_like_labels(data)


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
        ("differ only in letter case, spaces or invisible characters", case_key),
        ("are one number written two ways", number_key),
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


def warn_server_only_labels(data: TaskData) -> None:
    """Name the labels of `task.validation_file` that no site's file has.

    The label set is the union of the sites' and this file's labels, so such
    a label (most often a typo, or another coding than the sites') becomes a
    class of the model and of the exported `id2label` that no site trains.
    Only in a simulation, where the server holds the sites' files too.
    """
    if not data.has_sites or len(data.train) == 0 or data.transfer is None:
        return
    unseen = sorted(held_label_names(data.transfer) - held_label_names(data.train))
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
    unheld = [
        name for name in data.label_names if name not in held_label_names(*splits)
    ]
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


def warn_missing_like_labels(data: TaskData) -> None:
    """Name the classes that read as a missing value exported as text (`NA`).

    Such a label is a class as any other (docs/robustness.md's one rule
    for missing cells), so records whose label was empty in the source
    train the model to answer "missing". Counted over the records the
    server holds (all the files in a simulation, its own in a deployment);
    not refused, as a team may mean the class.
    """
    named = {
        index: name
        for index, name in enumerate(data.label_names)
        if name.casefold() in _MISSING_WORDS
    }
    if not named:
        return  # most tasks: no record need be counted
    splits = [data.train, data.test]
    if data.transfer is not None:
        splits.append(data.transfer)
    held = Counter(label for split in splits for label in split["label"])
    found = [(name, held[index]) for index, name in named.items() if held[index]]
    if found:
        logger.warning(
            "the %s %s %s like a missing value exported as text, yet %s a "
            "class of the model (every label but a blank cell or 'NaN' is read "
            "as written). A class made of records without a label trains the "
            "model to answer 'missing': if they have none, fill their labels "
            "in or remove them; if %s meant, leave %s",
            plural(len(found), "label", "labels"),
            ", ".join(
                f"{name!r} ({count} {plural(count, 'record')})" for name, count in found
            ),
            plural(len(found), "reads", "read"),
            plural(len(found), "it is", "each is"),
            plural(len(found), "the class is", "the classes are"),
            plural(len(found), "it", "them"),
        )
