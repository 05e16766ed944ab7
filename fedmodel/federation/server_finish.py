"""After the rounds: export and distil the models, then write the run's summary.

The order is what a stop relies on: the models and their cards are written
before summary.json, whose "ok" says the run finished, so a Ctrl-C before it
leaves a run that `fedmodel resume` finishes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fedmodel.config import RunSettings
from fedmodel.config.wording import plural
from fedmodel.data.label_descriptions import class_descriptions
from fedmodel.data.tasks import TaskData
from fedmodel.distill.finish import finish_models, server_distill_texts
from fedmodel.errors import FedmodelError
from fedmodel.federation.server_rounds import SharedRoundState, distill_on_clients
from fedmodel.model.finetune import merged_classifier
from fedmodel.run.layout import SUMMARY_FILE
from fedmodel.run.metrics import plot_progress
from fedmodel.run.stop_request import check_not_stopped
from fedmodel.run.summary import (
    STATUS_FAILED,
    FailedClient,
    RunFailed,
    RunSummary,
    client_rows,
    guarantee,
)
from fedmodel.serve.export import keep_label_descriptions
from fedmodel.serve.model_card import write_model_cards
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.loops import EvalResult

log = logging.getLogger(__name__)


def export_models(
    shared: SharedRoundState,
    model: GlobalModel,
    task: TaskData,
    *,
    file_texts: list[str] | None,
) -> dict[str, Any]:
    """Export the teacher, distil the student (on the clients if asked).

    `file_texts` are `distill.transfer_file`'s texts as the check before round
    1 read them (None without distillation or without the file): the student
    learns on what was checked, and the file is read once.
    """
    check_not_stopped("exporting the model")
    settings = shared.settings
    teacher_weights = model.weights()
    texts = file_texts
    if texts is None:  # no transfer file: the task's transfer split, if any
        texts = server_distill_texts(settings, task.transfer)
    teacher = merged_classifier(model.trainable)
    keep_label_descriptions(teacher, _exported_descriptions(settings, task))
    return finish_models(
        settings,
        teacher=teacher,
        tokenizer=model.tokenizer,
        test=task.test,
        server_texts=texts,
        run_dir=shared.run_dir,
        train_on_clients=(
            lambda student: distill_on_clients(
                shared, student, teacher_weights=teacher_weights, task=task
            )
        )
        if settings.distill.client_rounds
        else None,
        student_resumed=shared.resumed is not None
        and shared.resumed.student_round is not None,
    )


def _exported_descriptions(
    settings: RunSettings, task: TaskData
) -> dict[str, str] | None:
    """The classes' descriptions for the export, as the task read them; None without.

    A resume does not check that they describe every class (its head starts
    from the checkpoint): one they leave out costs the export its
    descriptions, not the run its models.
    """
    try:
        return class_descriptions(
            settings.task, task.label_names, task.label_descriptions
        )
    except FedmodelError as exc:
        log.warning("exporting without the labels' descriptions: %s", exc)
        return None


def conclude_run(
    shared: SharedRoundState, summary: RunSummary, final: EvalResult, started: float
) -> dict[str, Any]:
    """Complete the summary; write the plot, the model cards and summary.json.

    The cards only for a run that did not fail, and before summary.json; then
    raise RunFailed for a failed run, with its final line.
    """
    settings, run_dir = shared.settings, shared.run_dir
    summary.clients = client_rows(settings, shared.strategy.client_figures)
    summary.privacy_guarantee = guarantee(settings, summary.clients)
    summary.rounds = shared.history.rounds
    summary.failed_clients = [
        FailedClient(f.client_id, f.node_id, f.round, f.reason, f.permanent)
        for f in shared.watch.failures
    ]
    summary.client_compute_seconds = shared.writer.client_seconds
    summary.wall_seconds = time.perf_counter() - started
    if shared.failure:
        summary.status = STATUS_FAILED
        done = summary.rounds_completed
        summary.final_line = (
            f"run failed after {done} aggregated {plural(done, 'round')}: "
            f"{shared.failure}; summary in {run_dir / SUMMARY_FILE}"
        )
    else:
        rounds = summary.rounds_completed
        summary.final_line = (
            f"final test accuracy {final.accuracy:.4f}, macro-F1 "
            f"{final.macro_f1:.4f} after {rounds} {plural(rounds, 'round')}; "
            f"outputs in {run_dir}"
        )
        if shared.budget_end:
            summary.final_line += f". {shared.budget_end}"
    plot_progress(run_dir)
    payload = summary.to_dict()
    if summary.status != STATUS_FAILED:
        # Before summary.json: its "ok" is what says the run finished (to
        # `fedmodel resume`, a sweep's report), so a stop before it is written
        # leaves a run that a resume finishes, never a finished one whose model
        # folder lacks its card.
        write_model_cards(payload, settings)
    # Ctrl-C during the last round, the export or the cards: the run did not
    # finish, as the command says.
    check_not_stopped(f"writing {SUMMARY_FILE}")
    summary.write(run_dir)
    if summary.status == STATUS_FAILED:
        raise RunFailed(summary.final_line)
    log.info("%s", summary.final_line)
    return payload
