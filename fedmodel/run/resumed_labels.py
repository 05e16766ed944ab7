"""What a resume keeps of the labels: the run's label set and the head's rows' order.

The checkpoint names the labels its head's rows score, in order
(`run/checkpoint.py`); a resume whose files give another label set
(`check_same_labels`, which the records' check `client/record_check.py` asks
when a client's records changed, and the server before it loads the
checkpoint) or that orders its labels otherwise
(`check_label_order`) is refused here.
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.config import TaskSettings
from fedmodel.config.wording import first_ten
from fedmodel.data.label_order import former_label_order
from fedmodel.errors import FedmodelError
from fedmodel.run.checkpoint import Checkpoint, recorded_label_names


def check_label_order(
    run_dir: Path,
    checkpoint: Checkpoint,
    *,
    label_names: tuple[str, ...],
    task: TaskSettings,
) -> None:
    """Refuse a resume whose labels come in another order than the head's rows.

    The head's row i scores the checkpoint's label i: loaded under another
    order, every prediction would name the wrong label, silently. A checkpoint
    that does not name its labels is taken to follow the order fedmodel gave
    then: task=files' labels, when task.labels did not list them, sorted as
    text (whole numbers are ordered by value since).
    """
    trained, why = checkpoint.label_names, ""
    if trained is None:
        trained = former_label_order(task, label_names)
        why = " (whole-number labels are ordered by value now, as text then)"
    if trained is not None and trained != label_names:
        raise FedmodelError(
            f"resume=true in {run_dir}: the checkpoint's head scores the labels "
            f"in the order {_shown(trained)}, but this run orders them "
            f"{_shown(label_names)}{why}; its rows cannot be matched to the "
            "labels again: start a new run in a folder of its own"
        )


def check_same_labels(run_dir: Path, label_names: tuple[str, ...]) -> None:
    """Refuse a resume whose files now give another label set than the run's.

    A label added to one site's file (or dropped from every file) gives other
    sites' records other label ids, so their fingerprints differ though their
    files did not change: named as such, not as client 0's records changing.
    The server asks it before it loads the checkpoint, whose head then has
    rows of other labels: named as such, not as another model.
    """
    trained = recorded_label_names(run_dir)
    if trained is None or set(trained) == set(label_names):
        return
    added = [name for name in label_names if name not in trained]
    dropped = [name for name in trained if name not in label_names]
    raise FedmodelError(
        f"resume=true in {run_dir}: the task's files now give the labels "
        f"{first_ten(list(label_names))}, the run's were "
        f"{first_ten(list(trained))} (added: {first_ten(added)}, gone: "
        f"{first_ten(dropped)}"
        + (
            "; a label that only task.test_file holds is no class of the "
            "model: the test split chooses none"
            if dropped
            else ""
        )
        + "), so records may carry other label ids than the clients' privacy "
        "ledgers were charged for, and the checkpoint's head scores other "
        "labels. Restore the files the run began with, or start a new run in "
        "a folder of its own"
    )


def _shown(labels: tuple[str, ...]) -> str:
    return str(first_ten(list(labels)))
