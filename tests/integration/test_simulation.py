"""A real Flower simulation (Ray backend) with DP-SGD clients, end to end."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from flwr.app import Message

from fedmodel.config import settings_from_dict
from fedmodel.data.tasks import load_task
from fedmodel.federation import server_app
from fedmodel.federation import strategy as strategy_module
from fedmodel.federation.simulation import simulate
from fedmodel.model.finetune import prepare_for_finetuning
from fedmodel.model.head import trainable_state
from fedmodel.model.load import build_classifier
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.run.layout import RESOLVED_CONFIG
from fedmodel.run.metrics import read_rounds
from tests.conftest import client_ledger, logging_restored, small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The module's DP run: folder, summary, train replies, the start's weights.
DpRun = tuple[Path, dict[str, Any], list[Message], dict[str, torch.Tensor]]


def _record_replies(monkeypatch: pytest.MonkeyPatch) -> list[Message]:
    """Keep every train reply the server receives (the server runs in-process)."""
    seen: list[Message] = []
    original = strategy_module.BudgetAwareStrategy.aggregate_train

    def spy(self: Any, server_round: int, replies: Any) -> Any:
        replies = list(replies)
        seen.extend(replies)
        return original(self, server_round, replies)

    monkeypatch.setattr(strategy_module.BudgetAwareStrategy, "aggregate_train", spy)
    return seen


def _record_start(monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """Keep the trainable weights of the model the server starts round 1 from.

    That is the label-name head after the warm start, not a fresh build.
    """
    kept: dict[str, torch.Tensor] = {}
    original = server_app.start_model

    def spy(*args: Any, **kwargs: Any) -> Any:
        model, resumed, warm = original(*args, **kwargs)
        kept.update(trainable_state(model.classifier))
        return model, resumed, warm

    monkeypatch.setattr(server_app, "start_model", spy)
    return kept


def _initial_weights(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    settings = settings_from_dict({**config, "run_dir": ""})
    task = load_task(settings.task, seed=settings.seed)
    model = build_classifier(
        settings.model, label_names=task.label_names, seed=settings.seed
    )
    return trainable_state(prepare_for_finetuning(model, settings.finetune))


# Two rounds (epsilon grows in round 2, and a spent client is dropped from the
# round after it is refused); one local epoch and a short warm start: no
# assertion reads how far the model trained, only that it moved.
DP_RUN = (
    "privacy=dpsgd",
    "privacy.target_epsilon=4",
    "finetune.local_epochs=1",
    "warm_start.epochs=2",
)


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory: pytest.TempPathFactory) -> DpRun:
    """One DP run for this file: its folder, summary, replies and start weights.

    Its clients' ledgers hold the whole budget afterwards, which the spent-client
    test hands to a second run.
    """
    run_dir = tmp_path_factory.mktemp("dp-run")
    # Outside the per-test fixtures' reach (module scope): undo the spy and
    # the run's logging set-up here.
    with pytest.MonkeyPatch.context() as monkeypatch, logging_restored():
        replies = _record_replies(monkeypatch)
        start = _record_start(monkeypatch)
        summary = simulate(small_config(*DP_RUN), run_dir=run_dir)
    return run_dir, summary, replies, start


def test_dp_simulation_end_to_end(
    dp_run: DpRun,
) -> None:
    run_dir, summary, replies, start = dp_run

    # Two rounds ran and were recorded.
    rounds = read_rounds(run_dir)
    assert [r["round"] for r in rounds] == [1, 2]
    assert summary["rounds_completed"] == 2
    assert all(r["bytes_sent"] > 0 and r["bytes_received"] > 0 for r in rounds)
    for key in ("final_accuracy", "final_macro_f1", "wall_seconds"):
        assert key in summary

    # The run started from the model a fresh build gives the trainable names
    # of (the checkpoint holds the same), and every client's update moved it.
    final = torch.load(run_dir / "checkpoint" / "state.pt")["weights"]
    initial = _initial_weights(small_config(*DP_RUN))
    assert set(final) == set(initial) == set(start)
    for reply in replies:
        arrays = reply.content.array_records["arrays"]
        assert any(
            not torch.equal(torch.from_numpy(arrays[k].numpy()), start[k])
            for k in start
        )

    # Each client's epsilon grew in round 2 and equals a fresh accountant's value.
    assert len(summary["clients"]) == 3
    for client in summary["clients"]:
        ledger = client_ledger(run_dir, client["client_id"])
        eps_round_1, eps_round_2 = (r["epsilon"] for r in ledger["rounds"])
        assert eps_round_2 > eps_round_1 > 0
        steps_per_round = ledger["rounds"][0]["steps"]
        fresh = epsilon_for(
            [(client["noise_multiplier"], client["sample_rate"], client["steps"])],
            delta=client["delta"],
            accountant=client["accountant"],
        )
        assert client["steps"] == 2 * steps_per_round
        assert client["epsilon"] == pytest.approx(fresh, rel=1e-9)
        assert eps_round_2 == pytest.approx(fresh, rel=1e-9)
        assert client["epsilon"] <= 4.0
        assert client["budget_exhausted"] is False

    # No reply carried anything but the trainable weights and numbers.
    assert len(replies) == 6
    for reply in replies:
        content = reply.content
        assert not content.config_records
        assert set(content.array_records) == {"arrays"}
        assert set(content.array_records["arrays"]) == set(initial)
        assert set(content.metric_records) == {"metrics"}
        metrics = content.metric_records["metrics"]
        for value in metrics.values():
            assert isinstance(value, int | float)
        # Statistics computed from the records without noise stay home.
        assert "train-loss" not in metrics and "compute-seconds" not in metrics

    # Outputs a user reads.
    for name in (
        "metrics.jsonl",
        "summary.json",
        "progress.png",
        "resolved_config.yaml",
        "model/config.json",
        "model/model.onnx",
        "student/config.json",
        "student/model.onnx",
    ):
        assert (run_dir / name).is_file(), name
    # Each model's card travels with it and states the run's guarantee.
    # Rounded up (two digits; delta to a power of ten), never down.
    epsilon = summary["privacy_guarantee"]["epsilon"]
    delta = summary["privacy_guarantee"]["delta"]
    for folder in ("model", "student"):
        card = (run_dir / folder / "README.md").read_text()
        said = re.search(
            r"any one record of a client \(DP-SGD on each client, Opacus\):\*\* "
            r"epsilon at most ([0-9.]+), delta at most ([0-9.]+),",
            card,
        )
        assert said is not None
        assert epsilon <= float(said[1]) <= epsilon * 1.1
        assert delta <= float(said[2]) < delta * 10
    # The server distilled a smaller student and reported on both models.
    assert summary["student"]["num_layers"] == 1
    assert summary["teacher"]["num_layers"] == 2
    assert summary["distillation"]["server_texts"] > 0
    assert summary["student_vs_teacher"]["parameter_ratio"] < 1.0


def test_spent_client_is_refused_and_no_longer_selected(
    tmp_path: Path, dp_run: DpRun
) -> None:
    first, _, _, _ = dp_run
    spent_ledger = first / "clients" / "client-0" / "privacy_ledger.json"
    spent = json.loads(spent_ledger.read_text())

    # Client 0 arrives at a run with the budget it already spent (a new run
    # would not start in a folder holding a ledger: this one is resumed, with
    # the settings the first run resolved, as a run's folder holds them).
    second = tmp_path / "second"
    (second / "clients" / "client-0").mkdir(parents=True)
    (second / "clients" / "client-0" / "privacy_ledger.json").write_text(
        spent_ledger.read_text()
    )
    shutil.copy(first / RESOLVED_CONFIG, second / RESOLVED_CONFIG)
    summary = simulate(
        small_config(*DP_RUN, "distill=off", "resume=true"), run_dir=second
    )

    rounds = read_rounds(second)
    assert [r["clients_selected"] for r in rounds] == [3, 2]
    assert [r["clients_aggregated"] for r in rounds] == [2, 2]
    by_id = {c["client_id"]: c for c in summary["clients"]}
    assert by_id[0]["budget_exhausted"] is True
    assert by_id[0]["epsilon"] == pytest.approx(spent["rounds"][-1]["epsilon"])
    after = json.loads(
        (second / "clients" / "client-0" / "privacy_ledger.json").read_text()
    )
    assert after["history"] == spent["history"]
    assert by_id[1]["budget_exhausted"] is False
