"""Before round 1: settings, the run folder, the node count, the model, resume.

A kill leaves at most a half-written temp file behind (`state.pt.tmp`, a
ledger's `.privacy_ledger.json.<random>.tmp`, the resolved config's); the next
start removes them.
`resume=true` continues after the checkpoint's round; with no checkpoint yet
(a run killed before its first round finished) it starts at round 1, and the
clients' ledgers keep every charge made before the kill.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import datasets
import yaml
from flwr.serverapp import Grid

from fedmodel.config import (
    RunSettings,
    compose_config,
    from_run_config,
    settings_from_dict,
)
from fedmodel.config.compose import refuse_run_folder_key
from fedmodel.config.deployment import check_deployment_settings
from fedmodel.config.run_config import FLWR_RUN_FOLDER, is_app_run_config
from fedmodel.config.wording import plural
from fedmodel.data.tasks import TaskData
from fedmodel.errors import FedmodelError
from fedmodel.federation.spent_budgets import spent_clients
from fedmodel.privacy.durable_file import remove_stale_temp_files, write_durably
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE, LEDGER_FILE
from fedmodel.run.checkpoint import (
    Checkpoint,
    check_label_order,
    keep_rounds_up_to,
    load_checkpoint,
    remove_stale_checkpoint,
)
from fedmodel.run.layout import (
    CHECKPOINT_DIR,
    CLIENTS_DIR,
    RESOLVED_CONFIG,
    START_RECORDS,
    checkpoint_file,
)
from fedmodel.run.metrics import numbered_name
from fedmodel.run.resumed_settings import changed_keys
from fedmodel.run.resumed_student import check_student_resume
from fedmodel.run.stored_config import stored_config
from fedmodel.serve.model_card import remove_cut_cards
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.loops import EvalResult
from fedmodel.training.model_selection import LastRoundOrStart, split_for_selection
from fedmodel.training.warm_start import public_start

log = logging.getLogger(__name__)

NODE_WAIT_SECONDS = 60.0


def settings_from_run_config(run_config: dict[str, Any]) -> RunSettings:
    """Typed settings from a flat run-config.

    Under `flwr run` the run-config holds only the app's keys
    (`is_app_run_config`): `overrides` (Hydra syntax, applied to conf/) and
    `run-dir` ("" means outputs/<date>/<time>-flwr-<task>). The ServerApp runs
    in the SuperLink's working directory, so the run folder is made absolute
    here: the log names it and ClientApps find it from any working directory.
    `fedmodel simulate` passes the whole composed config instead, flattened;
    the budget rule fills its null keys here, as on every party.
    """
    if is_app_run_config(run_config):
        overrides = shlex.split(str(run_config.get("overrides", "")))
        refuse_run_folder_key(overrides, instead=FLWR_RUN_FOLDER)
        raw = compose_config(overrides)
        run_dir = str(run_config.get("run-dir", "")) or (
            f"outputs/{datetime.now():%Y-%m-%d/%H-%M-%S}-flwr-{raw['task']['name']}"
        )
        raw["run_dir"] = str(Path(run_dir).expanduser().resolve())
    else:
        raw = from_run_config(run_config)
    return settings_from_dict(raw)


def prepare_run_dir(grid: Grid, settings: RunSettings) -> Path:
    """Check the federation, once the folder is checked; tidy what a kill left."""
    run_dir = Path(settings.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_federation(grid, settings)
    _remove_stale_temp_files(run_dir)
    return run_dir


def write_resolved_config(run_dir: Path, settings: RunSettings) -> None:
    """Write the run's settings, whole or not at all, once its start is loaded.

    So a resume refused for its checkpoint leaves the folder's config as it
    was. An earlier start's config that differs is copied to a numbered name
    first, so a kill at any point leaves a whole config in place.
    """
    config = asdict(settings)
    path = run_dir / RESOLVED_CONFIG
    earlier = stored_config(run_dir)  # relative paths of an older run: absolute
    # `resume` is no change of settings: a resume sets it, as it must.
    changed = sorted(set(changed_keys(earlier, config)) - {"resume"}) if earlier else []
    if changed:
        kept = numbered_name(path)  # a copy: a kill leaves a config in place
        write_durably(kept, path.read_text(encoding="utf-8"))
        log.warning(
            "%s held the resolved config of an earlier start, which differs in "
            "%s: kept as %s",
            run_dir,
            ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else ""),
            kept.name,
        )
    write_durably(path, yaml.safe_dump(config, sort_keys=False))


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


def _remove_stale_temp_files(run_dir: Path) -> None:
    removed = [run_dir / CHECKPOINT_DIR] if remove_stale_checkpoint(run_dir) else []
    removed += remove_stale_temp_files(run_dir / CENTRAL_LEDGER_FILE)
    removed += remove_stale_temp_files(run_dir / RESOLVED_CONFIG)
    for name in START_RECORDS:
        removed += remove_stale_temp_files(run_dir / name)
    removed += remove_cut_cards(run_dir)
    clients = run_dir / CLIENTS_DIR
    if clients.is_dir():
        for state_dir in sorted(p for p in clients.iterdir() if p.is_dir()):
            removed += remove_stale_temp_files(state_dir / LEDGER_FILE)
    if removed:
        log.info(
            "removed %d temp %s an earlier stop left behind in %s",
            len(removed),
            plural(len(removed), "file"),
            run_dir,
        )


def _check_federation(grid: Grid, settings: RunSettings) -> None:
    """In simulation every client is one node: the counts must agree.

    The simulation engine registers its nodes just after the ServerApp starts,
    so wait briefly for them. A deployment checks its deployment-only
    settings instead (`config/deployment.py`): its sites connect later.
    """
    if settings.federation.name != "simulation":
        check_deployment_settings(settings)
        return
    deadline = time.monotonic() + NODE_WAIT_SECONDS
    nodes = len(list(grid.get_node_ids()))
    while nodes < settings.num_clients and time.monotonic() < deadline:
        time.sleep(0.5)
        nodes = len(list(grid.get_node_ids()))
    if nodes != settings.num_clients:
        raise FedmodelError(
            f"the federation has {nodes} nodes but num_clients is "
            f"{settings.num_clients}: start the simulation with "
            f"num-supernodes={settings.num_clients} or set num_clients={nodes}"
        )


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
