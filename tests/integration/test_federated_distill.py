"""Federated distillation in a real Flower simulation, against the printed plan.

With `distill=federated` the clients also train the student under DP-SGD, so
their noise covers the teacher's and the student's rounds. One run serves this
file's tests (a module fixture): `fedmodel privacy-plan` is printed first, and
the run must then charge every client's ledger exactly that plan, round by
round, the student's round included.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Message

from fedmodel.cli.main import run_command
from fedmodel.federation.simulation import simulate
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.run.metrics import read_rounds
from tests.conftest import client_ledger, logging_restored, small_config, small_run
from tests.integration.test_simulation import _record_replies

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TARGET_EPSILON = 4.0
FEDERATED_DISTILL = [
    "privacy=dpsgd",
    f"privacy.target_epsilon={TARGET_EPSILON:g}",
    "num_rounds=2",
    "distill=federated",
    "distill.rounds=1",
    "distill.epochs=1",
    "finetune.local_epochs=1",
    # What is charged depends on neither the count of records nor the start:
    # 100 records a client, not 200, and no warm start (its 30-epoch fit of
    # the head on 800 server-held records took 9 s of CPU on 2 cores).
    "task.max_train_examples=300",
    "warm_start.enabled=false",
]


@pytest.fixture(scope="module")
def federated_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[dict[str, Any]], dict[str, Any], list[Message]]:
    """The printed plan, then the run: its folder, plan, summary and replies."""
    # Outside the per-test fixtures' reach (module scope): undo the logging
    # set-up of the command and the run, and the spy, here.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), logging_restored():
        code = run_command(["privacy-plan", "--json", *small_run(*FEDERATED_DISTILL)])
    assert code == 0
    plans = json.loads(printed.getvalue())["clients"]

    run_dir = tmp_path_factory.mktemp("federated-distill")
    with pytest.MonkeyPatch.context() as monkeypatch, logging_restored():
        replies = _record_replies(monkeypatch)
        summary = simulate(small_config(*FEDERATED_DISTILL), run_dir=run_dir)
    return run_dir, plans, summary, replies


def test_federated_distillation_charges_every_client_ledger(
    federated_run: tuple[Path, list[dict[str, Any]], dict[str, Any], list[Message]],
) -> None:
    run_dir, _, summary, replies = federated_run

    rounds = read_rounds(run_dir)
    assert [(r["round"], r.get("model", "teacher")) for r in rounds] == [
        (1, "teacher"),
        (2, "teacher"),
        (3, "student"),
    ]
    assert rounds[2]["clients_aggregated"] == 3
    # Student replies carry the student's trainable weights, not the teacher's.
    student_keys = set(replies[-1].content.array_records["arrays"])
    assert any(key.startswith("bert.encoder.layer.0.") for key in student_keys)
    assert not any(key.startswith("bert.embeddings.") for key in student_keys)

    for client in summary["clients"]:
        ledger = client_ledger(run_dir, client["client_id"])
        assert [r["round"] for r in ledger["rounds"]] == [1, 2, 3]
        eps_teacher, eps_both = (r["epsilon"] for r in ledger["rounds"][1:])
        assert eps_both > eps_teacher
        fresh = epsilon_for(
            [(client["noise_multiplier"], client["sample_rate"], client["steps"])],
            delta=client["delta"],
            accountant=client["accountant"],
        )
        # The reported epsilon covers the student's round too, and the noise
        # was calibrated for all three rounds, so the target holds.
        assert client["epsilon"] == pytest.approx(fresh, rel=1e-9)
        assert client["epsilon"] == pytest.approx(eps_both, rel=1e-9)
        assert client["steps"] == 3 * ledger["rounds"][0]["steps"]
        assert client["epsilon"] <= TARGET_EPSILON + 1e-6
    assert summary["student"]["num_layers"] == 1
    assert (run_dir / "student" / "model.onnx").is_file()


def test_printed_plan_equals_every_client_ledger(
    federated_run: tuple[Path, list[dict[str, Any]], dict[str, Any], list[Message]],
) -> None:
    run_dir, plans, summary, _ = federated_run

    assert [plan["client"] for plan in plans] == [0, 1, 2]
    assert len(summary["clients"]) == 3
    for plan in plans:
        ledger = client_ledger(run_dir, plan["client"])
        charged = ledger["rounds"]
        # Two teacher rounds and one student round, all planned from round 1.
        assert [r["round"] for r in charged] == [1, 2, 3]
        assert plan["planned_rounds"] == 3
        assert plan["noise_multiplier"] == ledger["noise_multiplier"]
        assert plan["sample_rate"] == ledger["sample_rate"]
        assert plan["delta"] == ledger["delta"]
        assert all(r["steps"] == plan["steps_per_round"] for r in charged)
        # The epsilon printed for each round is the epsilon charged after it,
        # by the accountant the ledger charges with.
        for printed, charge in zip(
            plan["epsilon_by_round"][ledger["accountant"]], charged, strict=True
        ):
            assert printed == pytest.approx(charge["epsilon"], rel=1e-9)
        assert charged[-1]["epsilon"] <= TARGET_EPSILON
