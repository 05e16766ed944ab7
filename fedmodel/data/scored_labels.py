"""The test file's labels against the model's classes, said once per run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fedmodel.config import TaskSettings
from fedmodel.config.wording import first_ten, plural
from fedmodel.data.label_likeness import class_written
from fedmodel.data.splits import TaskData, held_label_names
from fedmodel.errors import FedmodelError

logger = logging.getLogger(__name__)


def warn_test_only_labels(data: TaskData) -> None:
    """Name the test split's labels that no training record has, once per run.

    The labels that are no class of the model (the test split chooses none),
    with the count of their records, which every score counts as errors; and,
    where the server holds the training records (a simulation), the classes
    that no training or validation record has (task.labels lists them).
    """
    classes = len(data.label_names)
    others = sorted(held_label_names(data.test) - set(data.label_names))
    if others:
        held = sum(label >= classes for label in data.test["label"])
        logger.warning(
            "%(count)d %(labels)s of the test file %(are)s no class of the "
            "model, as no training or validation record holds %(them)s (the "
            "test split chooses no class): %(others)s. %(held)d of its %(all)d "
            "records %(hold)s %(them)s and %(count_as)s in the test accuracy "
            "and macro-F1. %(fix)s",
            {
                "fix": _test_label_fix(
                    others, data.label_names, none_scored=held == len(data.test)
                ),
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
    unseen = sorted(
        held_label_names(data.test) - set(others) - held_label_names(*trained)
    )
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
    held = (
        held_label_names(data.train) if len(data.train) > 0 else set(data.label_names)
    )
    untested = [n for n in data.label_names if n in held - held_label_names(data.test)]
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


def _test_label_fix(
    others: list[str], classes: Sequence[str], *, none_scored: bool
) -> str:
    """What to do about test labels no class is, naming those a class writes.

    A test file exported apart from the sites' files may write their codes
    as floats (`3.0` for `3`) or in another case: then its records count as
    errors, and adding training records of `3.0`, the advice for a label the
    sites lack, would make it a second class. Where no test record holds a
    class (`none_scored`) and no label writes one, the file most likely codes
    its labels otherwise (`0`, `1`, `2` beside the sites' names).
    """
    alike = {other: class_written(other, classes) for other in others}
    shown = [f"{other!r} (the class {name!r})" for other, name in alike.items() if name]
    if none_scored and not shown:
        return (
            "The test file most likely codes its labels another way than the "
            "training files (codes in one, names in the other, or another code "
            "list), as none of its records holds a class of the model. Write "
            "the test file's labels as the training files write them, the classes "
            f"{first_ten(list(classes))}"
        )
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


def refuse_unscored_test_file(task: TaskSettings, data: TaskData) -> None:
    """Refuse a simulation none of whose test records holds a class of the model.

    Every record would count as an error: the run's test accuracy and
    macro-F1 would read 0 whatever the model learnt, and the sites' privacy
    budget, charged for good, would be spent on a run that cannot be judged.
    Most often the test file codes its labels otherwise; the fix is a
    rewrite of that file, so `fedmodel simulate` refuses before any charge.
    `fedmodel privacy-plan` plans the run and gives the warning
    (`warn_test_only_labels`). Only where the label set comes from the sites'
    files (under `task.labels`, a test label it lacks is refused as read).
    """
    classes = len(data.label_names)
    labels = data.test["label"]
    if task.test_file is None or len(data.train) == 0 or not labels:
        return
    if any(label < classes for label in labels):
        return
    others = sorted(held_label_names(data.test))
    raise FedmodelError(
        f"task.test_file: file {Path(task.test_file)}: none of its {len(labels)} "
        "records holds a class of the model (no training or validation record "
        f"holds its {plural(len(others), 'label')} {first_ten(others)}), so "
        "every test record "
        "would count as an error and the test accuracy and macro-F1 would read "
        "0 once the sites had spent their privacy budget. "
        + _test_label_fix(others, data.label_names, none_scored=True)
    )
