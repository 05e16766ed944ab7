"""Flower ServerApp: rounds, global evaluation, checkpoints and run outputs."""

from __future__ import annotations

import logging
import shlex
import statistics
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import datasets
import torch
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.serverapp import Grid, ServerApp

from fedmodel.config import (
    RunSettings,
    compose_config,
    from_run_config,
    settings_from_dict,
    to_run_config,
)
from fedmodel.config.deployment import check_deployment_settings
from fedmodel.data import load_task
from fedmodel.distill.finish import finish_models
from fedmodel.errors import FedmodelError
from fedmodel.federation.central_dp import ClientLevelDPStrategy
from fedmodel.federation.strategy import (
    ARRAYS_KEY,
    EXHAUSTED_KEY,
    METRICS_KEY,
    TEACHER_KEY,
    BudgetAwareStrategy,
    build_strategy,
)
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.load import (
    load_trainable_state,
    merged_classifier,
    prepare_student_for_distillation,
    trainable_state,
)
from fedmodel.privacy.client_level import privacy_guarantee
from fedmodel.run.checkpoint import (
    Checkpoint,
    keep_rounds_up_to,
    load_checkpoint,
    save_checkpoint,
)
from fedmodel.run.console import setup_logging
from fedmodel.run.layout import RESOLVED_CONFIG, TEACHER_DIR
from fedmodel.run.metrics import append_round, archive_rounds, plot_progress, write_json
from fedmodel.training.embedding_cache import length_sorted_loader
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.loops import evaluate, text_logits
from fedmodel.training.warm_start import warm_start_head

app = ServerApp()
log = logging.getLogger(__name__)

NODE_WAIT_SECONDS = 60.0


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run a federation from the run-config Flower hands the ServerApp."""
    setup_logging()
    run_federation(grid, settings_from_run_config(dict(context.run_config)))


def settings_from_run_config(run_config: dict[str, Any]) -> RunSettings:
    """Typed settings from a flat run-config.

    Under `flwr run` the run-config holds only pyproject's [tool.flwr.app.config]
    keys: `overrides` (Hydra syntax, applied to conf/) and `run-dir` ("" means
    outputs/<date>/<time>-flwr-<task>). The ServerApp runs in the SuperLink's
    working directory, so the run folder is made absolute here: the log then
    names it and ClientApps find it whatever their own working directory.
    `fedmodel simulate` passes the whole resolved config instead.
    """
    if set(run_config) <= {"overrides", "run-dir"}:
        raw = compose_config(shlex.split(str(run_config.get("overrides", ""))))
        run_dir = str(run_config.get("run-dir", ""))
        if not run_dir:
            stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
            run_dir = f"outputs/{stamp}-flwr-{raw['task']['name']}"
        raw["run_dir"] = str(Path(run_dir).expanduser().resolve())
    else:
        raw = from_run_config(run_config)
    return settings_from_dict(raw)


def run_federation(grid: Grid, settings: RunSettings) -> dict[str, Any]:
    """Train the shared model over `settings.num_rounds` rounds; write outputs."""
    started = time.perf_counter()
    run_dir = Path(settings.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESOLVED_CONFIG).write_text(
        yaml.safe_dump(asdict(settings), sort_keys=False)
    )
    _check_node_count(grid, settings)
    archived = None if settings.resume else archive_rounds(run_dir)
    if archived:
        log.warning(
            "%s already held rounds of an earlier run: kept as %s",
            run_dir,
            archived.name,
        )
    task = load_task(settings.task, seed=settings.seed)
    server_started = time.perf_counter()
    model = GlobalModel(settings, label_names=task.label_names, test=task.test)
    resumed = _resume(run_dir, model) if settings.resume else None
    if resumed is None and settings.warm_start.enabled and task.transfer is not None:
        loss = warm_start_head(
            model.classifier, settings=settings, transfer=task.transfer
        )
        log.info(
            "warm start: head fitted on the server's %d transfer records (loss %.3f)",
            len(task.transfer),
            loss,
        )
    initial = model.evaluate()
    server_seconds = time.perf_counter() - server_started
    log.info(
        "initial test accuracy %.4f (macro-F1 %.4f)", initial.accuracy, initial.macro_f1
    )

    weights = model.weights()
    strategy = BudgetAwareStrategy(
        build_strategy(settings.strategy, num_clients=settings.num_clients),
        expected_shapes={name: tuple(w.shape) for name, w in weights.items()},
    )
    if settings.privacy.client_level:
        strategy = ClientLevelDPStrategy(strategy, settings=settings)
    train_config = ConfigRecord(dict(to_run_config(asdict(settings))))
    clients = strategy.client_figures
    arrays = ArrayRecord(weights)
    rounds_completed = 0 if resumed is None else resumed.round
    if resumed is not None:
        strategy.exhausted_nodes.update(resumed.exhausted_nodes)
        clients.update(resumed.client_figures)
    client_seconds = 0.0
    result = initial
    for server_round in range(rounds_completed + 1, settings.num_rounds + 1):
        round_started = time.perf_counter()
        messages = strategy.configure_train(server_round, arrays, train_config, grid)
        if not messages:
            log.warning(
                "round %d: every client has spent its privacy budget; stopping",
                server_round,
            )
            break
        replies = list(
            grid.send_and_receive(messages, timeout=settings.federation.round_timeout)
        )
        new_arrays, train_metrics, accepted = strategy.aggregate_train(
            server_round, replies
        )
        _check_participation(
            server_round,
            settings,
            messages=messages,
            replies=replies,
            accepted=accepted,
        )
        if new_arrays is not None:
            arrays = new_arrays
            model.load(arrays.to_torch_state_dict())
        eval_started = time.perf_counter()
        result = model.evaluate()
        server_seconds += time.perf_counter() - eval_started
        rounds_completed = server_round
        record = _round_record(
            server_round,
            result=result,
            messages=messages,
            accepted=accepted,
            clients=clients,
            train_loss=None
            if train_metrics is None
            else train_metrics.get("train-loss"),
            seconds=time.perf_counter() - round_started,
        )
        append_round(run_dir, record)
        client_seconds += record["client_compute_seconds"]
        if settings.checkpoint_every_round:
            save_checkpoint(
                run_dir,
                Checkpoint(
                    round=server_round,
                    weights=model.weights(),
                    exhausted_nodes=sorted(strategy.exhausted_nodes),
                    client_figures=clients,
                ),
            )
        _log_round(settings, record)

    final = result
    teacher_weights = model.weights()

    def distill_on_clients(student: PooledBertForSequenceClassification) -> None:
        _distill_on_clients(
            grid,
            settings,
            student=student,
            teacher_weights=teacher_weights,
            teacher_strategy=strategy,
            test=task.test,
            train_config=train_config,
        )

    finished = finish_models(
        settings,
        teacher=merged_classifier(model.trainable),
        tokenizer=model.tokenizer,
        test=task.test,
        transfer=task.transfer,
        run_dir=run_dir,
        train_on_clients=distill_on_clients
        if settings.distill.name == "federated"
        else None,
    )
    summary = {
        "final_accuracy": final.accuracy,
        "final_macro_f1": final.macro_f1,
        "initial_accuracy": initial.accuracy,
        "warm_start": settings.warm_start.enabled and task.transfer is not None,
        "rounds_completed": rounds_completed,
        "wall_seconds": time.perf_counter() - started,
        # Pure compute, for the simulation-overhead benchmark: the clients'
        # local rounds and the server's warm start and evaluations.
        "client_compute_seconds": client_seconds,
        "server_compute_seconds": server_seconds,
        "task": settings.task.name,
        "finetune_mode": settings.finetune.mode,
        "privacy": settings.privacy.mode,
        "privacy_guarantee": privacy_guarantee(settings, clients),
        "model_dir": str(run_dir / TEACHER_DIR),
        "clients": [
            _client_summary(settings, cid, clients[cid]) for cid in sorted(clients)
        ],
        **finished,
    }
    write_json(run_dir / "summary.json", summary)
    plot_progress(run_dir)
    log.info(
        "final test accuracy %.4f, macro-F1 %.4f after %d rounds; outputs in %s",
        final.accuracy,
        final.macro_f1,
        rounds_completed,
        run_dir,
    )
    return summary


def _check_participation(
    server_round: int,
    settings: RunSettings,
    *,
    messages: list[Message],
    replies: list[Message],
    accepted: list[Message],
) -> None:
    """Log the sites that dropped out; stop below `federation.min_replies`.

    A site that has not answered within `federation.round_timeout` (or whose
    SuperNode Flower reports unavailable) is left out of the round. Only
    failures count against the minimum: a round in which every selected
    client answered "budget exhausted" is not a failure.
    """
    federation = settings.federation
    missing = len(messages) - len(replies)
    failures = [r.error.reason for r in replies if r.has_error()]
    if missing:
        log.warning(
            "round %d: %d of %d selected clients did not answer within %g s",
            server_round,
            missing,
            len(messages),
            federation.round_timeout,
        )
    if len(accepted) >= federation.min_replies or not (failures or missing):
        return
    reason = f", the first failure: {failures[0]}" if failures else ""
    raise FedmodelError(
        f"round {server_round}: {len(accepted)} accepted update(s), fewer than "
        f"federation.min_replies={federation.min_replies}; {len(failures)} "
        f"failed and {missing} did not answer{reason}"
    )


def _check_node_count(grid: Grid, settings: RunSettings) -> None:
    """In simulation every client is one node: the counts must agree.

    The simulation engine registers its nodes just after the ServerApp starts,
    so wait briefly for them before comparing.
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


def _round_record(
    server_round: int,
    *,
    result: Any,
    messages: list[Message],
    accepted: list[Message],
    clients: dict[int, dict[str, float]],
    train_loss: Any,
    seconds: float,
) -> dict[str, Any]:
    epsilons = [c["epsilon"] for c in clients.values() if "epsilon" in c]
    return {
        "round": server_round,
        "accuracy": result.accuracy,
        "macro_f1": result.macro_f1,
        "test_loss": result.loss,
        "train_loss": train_loss,
        "clients_selected": len(messages),
        "clients_aggregated": len(accepted),
        "epsilon_max": max(epsilons) if epsilons else None,
        "epsilon_mean": statistics.fmean(epsilons) if epsilons else None,
        "bytes_sent": sum(m.content[ARRAYS_KEY].count_bytes() for m in messages),
        "client_compute_seconds": sum(_compute_seconds(m) for m in accepted),
        "bytes_received": sum(m.content[ARRAYS_KEY].count_bytes() for m in accepted),
        "seconds": seconds,
    }


def _compute_seconds(reply: Message) -> float:
    value = reply.content.metric_records[METRICS_KEY].get("compute-seconds", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def _client_summary(
    settings: RunSettings, client_id: int, figures: dict[str, float]
) -> dict[str, Any]:
    private = settings.privacy.enabled
    return {
        "client_id": client_id,
        "num_train_examples": int(figures.get("num-examples", 0)),
        "epsilon": figures.get("epsilon") if private else None,
        "delta": figures.get("delta") if private else None,
        "noise_multiplier": figures.get("noise-multiplier") if private else None,
        "sample_rate": figures.get("sample-rate") if private else None,
        "steps": int(figures.get("steps", 0)) if private else None,
        "accountant": settings.privacy.accountant if private else None,
        "budget_exhausted": bool(figures.get(EXHAUSTED_KEY, 0)),
    }


def _resume(run_dir: Path, model: GlobalModel) -> Checkpoint:
    """Load the last checkpoint into `model`; drop metrics of unfinished rounds."""
    checkpoint = load_checkpoint(
        run_dir,
        expected_shapes={name: tuple(w.shape) for name, w in model.weights().items()},
    )
    model.load(checkpoint.weights)
    keep_rounds_up_to(run_dir, checkpoint.round)
    log.info(
        "resuming %s after round %d (%d client(s) with spent budgets)",
        run_dir,
        checkpoint.round,
        len(checkpoint.exhausted_nodes),
    )
    return checkpoint


def _log_round(
    settings: RunSettings,
    record: dict[str, Any],
    *,
    total_rounds: int | None = None,
    model_name: str = "",
) -> None:
    epsilon = ""
    if record["epsilon_max"] is not None:
        epsilon = (
            f" | epsilon max {record['epsilon_max']:.2f} "
            f"mean {record['epsilon_mean']:.2f}"
        )
    log.info(
        "%sround %d/%d: test accuracy %.4f macro-F1 %.4f | %d/%d clients%s | %.1f s",
        f"{model_name} " if model_name else "",
        record["round"],
        total_rounds or settings.num_rounds,
        record["accuracy"],
        record["macro_f1"],
        record["clients_aggregated"],
        record["clients_selected"],
        epsilon,
        record["seconds"],
    )


def _distill_on_clients(
    grid: Grid,
    settings: RunSettings,
    *,
    student: PooledBertForSequenceClassification,
    teacher_weights: dict[str, torch.Tensor],
    teacher_strategy: BudgetAwareStrategy,
    test: datasets.Dataset,
    train_config: ConfigRecord,
) -> None:
    """Federated distillation: `distill.rounds` rounds of the student on the clients.

    Each message carries the student's trainable weights and the teacher's;
    clients distil on their own records under DP-SGD and charge their ledgers,
    as in the teacher's rounds (numbered on from them). Clients that spent
    their budget are not selected.
    """
    prepare_student_for_distillation(student)
    weights = trainable_state(student)
    strategy = teacher_strategy.for_other_weights(
        build_strategy(settings.strategy, num_clients=settings.num_clients),
        expected_shapes={name: tuple(w.shape) for name, w in weights.items()},
    )
    arrays = ArrayRecord(weights)
    test_loader = length_sorted_loader(settings, test)
    total = settings.num_rounds + settings.distill.rounds
    for server_round in range(settings.num_rounds + 1, total + 1):
        round_started = time.perf_counter()
        messages = strategy.configure_train(server_round, arrays, train_config, grid)
        if not messages:
            log.warning(
                "student round %d: every client has spent its privacy budget",
                server_round,
            )
            break
        for message in messages:
            message.content[TEACHER_KEY] = ArrayRecord(teacher_weights)
        replies = list(
            grid.send_and_receive(messages, timeout=settings.federation.round_timeout)
        )
        new_arrays, _, accepted = strategy.aggregate_train(server_round, replies)
        if new_arrays is not None:
            arrays = new_arrays
            load_trainable_state(student, arrays.to_torch_state_dict())
        result = evaluate(student, test_loader, logits_fn=text_logits(student))
        record = _round_record(
            server_round,
            result=result,
            messages=messages,
            accepted=accepted,
            clients=strategy.client_figures,
            train_loss=None,
            seconds=time.perf_counter() - round_started,
        )
        append_round(Path(settings.run_dir), {**record, "model": "student"})
        _log_round(settings, record, total_rounds=total, model_name="student")
