"""Flower ServerApp: set up, run the rounds, finish the models, write the summary.

The pieces live beside it: `server_setup` (settings, run folder),
`server_model` (the model's start, resume, the model kept),
`server_rounds` (the teacher's and the student's rounds on the one loop in
`rounds`, with the callbacks in `callbacks`) and `server_finish` (the export,
the student, and summary.json through `run/summary.py`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedmodel.client.record_check import check_simulated_clients
from fedmodel.config import RunSettings
from fedmodel.config.modes import SIMULATION
from fedmodel.config.run_config import app_overrides
from fedmodel.config.unread_keys import unread_key_warnings
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.federation.preflight import check_before_round_one, warn_about_records
from fedmodel.federation.server_finish import conclude_run, export_models
from fedmodel.federation.server_model import keep_selected, offer_start, start_model
from fedmodel.federation.server_rounds import prepare_rounds, train_teacher
from fedmodel.federation.server_setup import (
    check_federation,
    prepare_run_dir,
    settings_from_run_config,
    write_resolved_config,
)
from fedmodel.run.checkpoint import Checkpoint
from fedmodel.run.console import setup_logging
from fedmodel.run.folder_check import check_run_folder
from fedmodel.run.folder_lock import run_folder_held
from fedmodel.run.layout import TEACHER_DIR
from fedmodel.run.resumed_encoder import record_encoder
from fedmodel.run.resumed_student import record_transfer_file
from fedmodel.run.summary import RunFailed, RunSummary, mark_resumed
from fedmodel.run.tracking import track_run
from fedmodel.training.loops import EvalResult

app = ServerApp()
log = logging.getLogger(__name__)


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run a federation from the run-config Flower hands the ServerApp."""
    setup_logging()
    run_config = dict(context.run_config)
    settings = settings_from_run_config(run_config)
    run_dir = Path(settings.run_dir)
    setup_logging(run_dir)  # under `flwr run`: the run's log file
    # `fedmodel simulate` checks its clients before Flower starts; under
    # `flwr run` the server is the first to, before any client trains.
    try:
        run_federation(grid, settings, flwr_run_overrides=app_overrides(run_config))
    except RunFailed:
        try:
            track_run(settings, run_dir)  # logged as failed: its summary says so
        except FedmodelError as exc:  # the run's own failure is the one to show
            log.warning("%s", exc)
        raise
    track_run(settings, run_dir)


def run_federation(
    grid: Grid, settings: RunSettings, *, flwr_run_overrides: list[str] | None = None
) -> dict[str, Any]:
    """Train the shared model over `settings.num_rounds` rounds; write outputs.

    `flwr_run_overrides`: the overrides of a run that `fedmodel simulate` did
    not start, checked (and warned of) as it checks before Flower starts
    (`check_start`); None for a run it started.

    A run in which a client failed for good (unless the config allows it) or a
    round in which no client returned an update writes its summary, with the
    failed clients and their reasons, and then raises RunFailed. A run
    stopped by Ctrl-C (`run/stop_request.py`) raises RunStopped and writes no
    summary: it is resumed, not finished. The start holds its run folder
    throughout: one that finds another start of the run still going is
    refused before it sends anything (`run/folder_lock.py`).
    """
    with run_folder_held(Path(settings.run_dir)):
        return _run_held(grid, settings, flwr_run_overrides=flwr_run_overrides)


def _run_held(
    grid: Grid, settings: RunSettings, *, flwr_run_overrides: list[str] | None
) -> dict[str, Any]:
    started = time.perf_counter()
    distill_texts = check_before_round_one(settings)
    check_start(settings, flwr_run_overrides=flwr_run_overrides)
    check_federation(grid, settings)
    run_dir = prepare_run_dir(settings)
    # In `fedmodel simulate`'s process: the task its pre-Flower checks read.
    task = load_task(settings.task, seed=settings.seed)
    warn_about_records(settings, task, distill_texts=distill_texts)
    server_started = time.perf_counter()
    model, resumed, warm = start_model(settings, task=task, run_dir=run_dir)
    if resumed is not None:  # first: its "ok" must not outlast its config
        mark_resumed(run_dir)
    write_resolved_config(run_dir, settings)
    record_transfer_file(run_dir, settings)
    record_encoder(run_dir, settings)
    current = model.evaluate()
    server_seconds = time.perf_counter() - server_started
    start = _start_result(current, resumed, warm=warm)
    shared = prepare_rounds(
        grid, settings, model=model, run_dir=run_dir, resumed=resumed
    )
    shared.start_result = start
    selector = offer_start(model, resumed=resumed)
    shared.selector = selector
    evaluation = train_teacher(shared, model)
    final = keep_selected(model, selector) or evaluation.last or current
    summary = RunSummary(
        task=settings.task.name,
        finetune_mode=settings.finetune.mode,
        privacy=settings.privacy.mode,
        model_dir=str(run_dir / TEACHER_DIR),
        warm_start=None if start is None else _warm_started(start),
        initial_accuracy=current.accuracy if start is None else start["accuracy"],
        final_accuracy=final.accuracy,
        final_macro_f1=final.macro_f1,
        rounds_completed=shared.history.completed("teacher"),
        wall_seconds=0.0,
        client_compute_seconds=None,
        server_compute_seconds=server_seconds + evaluation.seconds,
        privacy_guarantee={},
        clients=[],
        selected_round=None if selector is None else selector.kept_round,
    )
    if shared.failure is None:
        summary.finished = export_models(shared, model, task, file_texts=distill_texts)
    return conclude_run(shared, summary, final, started)


def check_start(settings: RunSettings, *, flwr_run_overrides: list[str] | None) -> None:
    """Refuse a run its folder does not allow, then one `flwr run` started.

    The folder first: a resume with a changed key that deals the records is
    named by that key, not by the records it moved. For a run `fedmodel
    simulate` did not start (a deployment's, any `flwr run`'s, composed from
    `flwr_run_overrides`), the keys set for an option that ignores them are
    named as simulate names them, and a simulation's clients are checked
    before any is sent a message.
    """
    check_run_folder(Path(settings.run_dir), settings)
    if flwr_run_overrides is None:
        return
    for line in unread_key_warnings(settings, overrides=flwr_run_overrides):
        log.warning("%s", line)
    if settings.federation.name == SIMULATION:
        check_simulated_clients(settings)


def _warm_started(start: dict[str, float]) -> bool | None:
    """Whether the run began from a kept warm start; None if its start predates it."""
    return None if "warm_start" not in start else start["warm_start"] == 1.0


def _start_result(
    current: EvalResult, resumed: Checkpoint | None, *, warm: bool
) -> dict[str, float] | None:
    """The run's start on the test split (accuracy, macro_f1, warm_start), logged.

    A fresh run's start is `current`, warm-started or not (`warm`, 1.0 or
    0.0); a resumed run's is the one its checkpoint kept. None for a
    checkpoint written before that was kept: the summary then reports
    `current`, and says so in the log.
    """
    if resumed is None:
        log.info(
            "initial test accuracy %.4f (macro-F1 %.4f)",
            current.accuracy,
            current.macro_f1,
        )
        return {
            "accuracy": current.accuracy,
            "macro_f1": current.macro_f1,
            "warm_start": float(warm),
        }
    log.info(
        "test accuracy after round %d %.4f (macro-F1 %.4f)",
        resumed.round,
        current.accuracy,
        current.macro_f1,
    )
    start = resumed.start_result
    if start is None:
        log.warning(
            "the checkpoint predates keeping the run's start, so summary.json's "
            "initial_accuracy is the test accuracy after round %d (%.4f), not "
            "the accuracy before round 1",
            resumed.round,
            current.accuracy,
        )
    else:
        log.info(
            "the run's initial test accuracy %.4f (macro-F1 %.4f)",
            start["accuracy"],
            start["macro_f1"],
        )
    return start
