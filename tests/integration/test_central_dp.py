"""privacy=central: client-level DP through Flower's server-side adaptive clipping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fedmodel.config import settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.federation import adaptive_clipping
from fedmodel.federation.simulation import simulate
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.client_level import plan_client_level
from fedmodel.run.metrics import read_rounds
from tests.conftest import small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_central_dp_run_charges_a_client_level_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No warm start: the run's one charge is the noise on the clients' updates
    # (the warm start's 30-epoch fit of the head took 9 s of CPU on 2 cores).
    config = small_config(
        "privacy=central",
        "privacy.target_epsilon=8",
        "distill=off",
        "warm_start.enabled=false",
    )
    settings = settings_from_dict({**config, "run_dir": str(tmp_path)})
    plan = plan_client_level(settings)
    noised: list[Any] = []
    original = adaptive_clipping.round_noise
    ledger_file = tmp_path / "central_privacy_ledger.json"

    def spy() -> Any:
        # The ledger on disk must already hold this round when its noise is
        # drawn, before the noised model leaves.
        noised.append(len(json.loads(ledger_file.read_text())["rounds"]))
        return original()

    monkeypatch.setattr(adaptive_clipping, "round_noise", spy)

    summary = simulate(config, run_dir=tmp_path)

    assert noised == [1, 2]
    ledger = json.loads((tmp_path / "central_privacy_ledger.json").read_text())
    assert [r["round"] for r in ledger["rounds"]] == [1, 2]
    expected = epsilon_for(
        [(plan.noise_multiplier, 1.0, 2)], delta=1 / 30, accountant=plan.accountant
    )
    assert ledger["rounds"][-1]["epsilon"] == pytest.approx(expected)
    assert expected <= 8.0
    guarantee = summary["privacy_guarantee"]
    assert guarantee["level"] == "client"
    assert guarantee["epsilon"] == pytest.approx(expected)
    assert len(summary["clients"]) == 3
    for client in summary["clients"]:
        assert client["epsilon"] == pytest.approx(expected)
        assert client["delta"] == pytest.approx(1 / 30)
        assert client["noise_multiplier"] == plan.noise_multiplier
        assert client["steps"] == 2 and client["sample_rate"] == 1.0
    rounds = read_rounds(tmp_path)
    assert [r["epsilon_max"] for r in rounds][-1] == pytest.approx(expected)
    # Clients train without local DP-SGD and send no unnoised statistics.
    assert not list(tmp_path.glob("clients/*/privacy_ledger.json"))
    assert all(r["train_loss"] is None for r in rounds)
    weights = torch.load(tmp_path / "checkpoint" / "state.pt")["weights"]
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_central_dp_refuses_what_its_noise_does_not_cover(tmp_path: Path) -> None:
    needs = "needs strategy=fedavg or strategy=fedprox, got strategy=fedadam"
    with pytest.raises(FedmodelError, match=needs):
        simulate(small_config("privacy=central", "strategy=fedadam"), run_dir=tmp_path)
    with pytest.raises(FedmodelError, match="not below 1/n"):
        simulate(
            small_config("privacy=central", "privacy.target_delta=0.5"),
            run_dir=tmp_path,
        )
