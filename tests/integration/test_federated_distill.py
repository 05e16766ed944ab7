"""Federated distillation in a real Flower simulation: charged to each ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmodel.federation.simulation import simulate
from fedmodel.privacy import epsilon_for
from fedmodel.run.metrics import read_rounds
from tests.conftest import small_config
from tests.integration.test_simulation import _record_replies

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_federated_distillation_charges_every_client_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = small_config(
        "privacy=dpsgd",
        "privacy.target_epsilon=4",
        "num_rounds=1",
        "distill=federated",
        "distill.rounds=1",
        "distill.epochs=1",
        "distill.augment_copies=0",
        "finetune.local_epochs=1",
    )
    replies = _record_replies(monkeypatch)
    summary = simulate(config, run_dir=tmp_path)

    rounds = read_rounds(tmp_path)
    assert [(r["round"], r.get("model", "teacher")) for r in rounds] == [
        (1, "teacher"),
        (2, "student"),
    ]
    assert rounds[1]["clients_aggregated"] == 3
    # Student replies carry the student's trainable weights, not the teacher's.
    student_keys = set(replies[-1].content.array_records["arrays"])
    assert any(key.startswith("bert.encoder.layer.0.") for key in student_keys)
    assert not any(key.startswith("bert.embeddings.") for key in student_keys)

    for client in summary["clients"]:
        ledger = json.loads(
            (
                tmp_path
                / "clients"
                / f"client-{client['client_id']}"
                / "privacy_ledger.json"
            ).read_text()
        )
        charged = [r["round"] for r in ledger["rounds"]]
        assert charged == [1, 2]
        eps_teacher, eps_both = (r["epsilon"] for r in ledger["rounds"])
        assert eps_both > eps_teacher
        fresh = epsilon_for(
            [(client["noise_multiplier"], client["sample_rate"], client["steps"])],
            delta=client["delta"],
            accountant=client["accountant"],
        )
        # The reported epsilon covers the student's round too, and the noise
        # was calibrated for both rounds, so the target holds.
        assert client["epsilon"] == pytest.approx(fresh, rel=1e-9)
        assert client["epsilon"] == pytest.approx(eps_both, rel=1e-9)
        assert client["steps"] == 2 * ledger["rounds"][0]["steps"]
        assert client["epsilon"] <= 4.0 + 1e-6
    assert summary["student"]["num_layers"] == 1
    assert (tmp_path / "student" / "model.onnx").is_file()
