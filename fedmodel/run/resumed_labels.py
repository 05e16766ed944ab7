"""What a resume keeps of the labels: the order of the head's rows.

The checkpoint names the labels its head's rows score, in order
(`run/checkpoint.py`); a resume that orders its labels otherwise is refused
here. A label set that changed is the records' check
(`client/record_check.py`).
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.config import TaskSettings
from fedmodel.config.wording import first_ten
from fedmodel.data.label_order import former_label_order
from fedmodel.errors import FedmodelError
from fedmodel.run.checkpoint import Checkpoint


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


def _shown(labels: tuple[str, ...]) -> str:
    return str(first_ten(list(labels)))
