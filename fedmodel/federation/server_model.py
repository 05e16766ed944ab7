"""The global model before round 1 and after: its start, a resume, the model kept.

A fresh run starts from public information only (label names, the warm start
on the server's records); `resume=true` continues after the checkpoint's
round, and with no checkpoint yet (a run killed before its first round
finished) starts at round 1, the clients' ledgers keeping every charge made
before the kill. After the rounds `keep_best` keeps the last round's model or
the start.
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

from fedmodel.config import RunSettings
from fedmodel.data.tasks import TaskData
from fedmodel.federation.spent_budgets import spent_clients
from fedmodel.run.checkpoint import Checkpoint, load_checkpoint
from fedmodel.run.layout import RESOLVED_CONFIG, checkpoint_file
from fedmodel.run.metrics import keep_rounds_up_to
from fedmodel.run.resumed_labels import check_label_order, check_same_labels
from fedmodel.run.resumed_student import check_student_resume
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.loops import EvalResult
from fedmodel.training.model_selection import LastRoundOrStart, split_for_selection
from fedmodel.training.warm_start import public_start

log = logging.getLogger(__name__)


def start_model(
    settings: RunSettings, *, task: TaskData, run_dir: Path
) -> tuple[GlobalModel, Checkpoint | None, bool]:
    """The global model: from the checkpoint on resume, else from public information.

    The model's selector (`keep_best`) is built first, on the server's records
    kept to choose the model. In head mode it scores the head on their
    embeddings, as the warm-start check does, so the check scores by it and
    those records are embedded once; other modes' selectors run the model on
    the texts, and the check embeds the records itself. The flag says whether
    a fresh run's head is warm-started (False on resume: the checkpoint's
    start says what the run began from).
    """
    fit, held_out = server_splits(settings, task)
    model = GlobalModel(
        settings, label_names=task.label_names, test=task.test, validation=held_out
    )
    resumed = resume(run_dir, model) if settings.resume else None
    warm = False
    if resumed is None:
        warm = public_start(
            model.classifier,
            settings=settings,
            label_names=task.label_names,
            descriptions=task.label_descriptions,
            transfer=fit,
            held_out=model.selector if model.mode.on_features else held_out,
        )
    return model, resumed, warm


def server_splits(
    settings: RunSettings, task: TaskData
) -> tuple[datasets.Dataset | None, datasets.Dataset | None]:
    """The server's own labelled records: (warm-start part, model-choice part).

    With `keep_best` a fixed share is held out of the warm start to choose the
    model by; without it, or without such records, the warm start takes all.
    """
    transfer = task.transfer
    if transfer is None or len(transfer) < 2 or not settings.keep_best:
        return transfer, None
    return split_for_selection(transfer)


def resume(run_dir: Path, model: GlobalModel) -> Checkpoint | None:
    """Load the last checkpoint into `model`; drop metrics of unfinished rounds.

    None when the run never finished a round: it starts again at round 1. Once
    federated distillation has begun, the teacher's rounds are over, and the
    student's build and server distillation too: a resume that changes their
    settings is refused (`run/resumed_student.py`).
    """
    if not checkpoint_file(run_dir).is_file():
        # An earlier start writes its resolved config before any round: a
        # folder without one held no run (a mistyped run folder, say).
        if not (run_dir / RESOLVED_CONFIG).is_file():
            log.warning(
                "resume=true but %s holds no earlier run (no checkpoint, no %s): "
                "starting a new run at round 1. To continue a run, stop this one "
                "and give that run's folder (hydra.run.dir, or run-dir under flwr "
                "run)",
                run_dir,
                RESOLVED_CONFIG,
            )
        else:
            log.warning(
                "resume=true but %s holds no checkpoint yet (the run stopped "
                "before its first round was aggregated): starting at round 1. "
                "Clients keep every charge in their ledgers; a round they were "
                "charged for is charged again (an over-count, never an "
                "under-count)",
                run_dir,
            )
        keep_rounds_up_to(run_dir, 0)
        return None
    check_same_labels(run_dir, model.label_names)
    checkpoint = load_checkpoint(
        run_dir,
        expected_shapes={name: tuple(w.shape) for name, w in model.weights().items()},
    )
    check_student_resume(run_dir, checkpoint, model.settings)
    check_label_order(
        run_dir, checkpoint, label_names=model.label_names, task=model.settings.task
    )
    model.load(checkpoint.weights)
    keep_rounds_up_to(run_dir, checkpoint.last_round)
    log.info(
        "resuming %s after round %d (clients with spent budgets: %d)",
        run_dir,
        checkpoint.last_round,
        len(spent_clients(checkpoint.client_figures)),
    )
    return checkpoint


def offer_start(
    model: GlobalModel, *, resumed: Checkpoint | None
) -> LastRoundOrStart | None:
    """The model's selector, with the run's start offered to it first.

    None when `keep_best` is off or the server holds no records to choose by
    (a files task without `task.validation_file`): the last round is kept then.
    """
    selector = model.selector
    if selector is None:
        return None
    if resumed is not None and resumed.start_round is not None:
        # The run's start, from the checkpoint.
        assert resumed.start_weights is not None
        model.load(resumed.start_weights)
        selector.offer(resumed.start_round, resumed.start_weights)
        model.load(resumed.weights)
    selector.offer(0 if resumed is None else resumed.round, model.weights())
    return selector


def keep_selected(
    model: GlobalModel, selector: LastRoundOrStart | None
) -> EvalResult | None:
    """Load the model `keep_best` keeps; its test figures, reported only."""
    if selector is None or selector.kept is None:
        return None
    model.load(selector.kept.weights)
    log.info(
        "keeping the global model after round %d (server validation accuracy "
        "%.4f, loss %.4f; the last round's unless the start's loss is lower)",
        selector.kept.round,
        selector.kept.result.accuracy,
        selector.kept.result.loss,
    )
    return model.evaluate()
