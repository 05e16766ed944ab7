"""privacy=central: the epsilon a run releases is its server ledger's."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, ConfigRecord
from opacus.accountants import PRVAccountant

from fedmodel.cli.simulate import _say_done
from fedmodel.config import compose_config, settings_from_dict
from fedmodel.config.wording import decimals_up
from fedmodel.federation import adaptive_clipping, central_dp, checkpointing
from fedmodel.federation.callbacks import ConsoleLine
from fedmodel.federation.round_state import RoundState
from fedmodel.federation.server_app import run_federation
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.federation.strategy_choice import build_strategy
from fedmodel.privacy.client_level import plan_client_level
from fedmodel.privacy.ledger_cap import BudgetExhausted
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE
from fedmodel.run.metrics import read_rounds
from tests.conftest import logging_restored, small_settings
from tests.fake_grid import FAKE_GRID_RUN, FakeGrid, Killed


def _central_run(*overrides: str) -> dict[str, Any]:
    return compose_config(
        [
            *FAKE_GRID_RUN,
            "privacy=central",
            "privacy.target_epsilon=8",
            "num_rounds=3",
            "distill=off",
            "warm_start.enabled=false",
            *overrides,
        ]
    )


def _ledger_epsilon(run_dir: Path) -> float:
    ledger = json.loads((run_dir / CENTRAL_LEDGER_FILE).read_text())
    return float(ledger["rounds"][-1]["epsilon"])


def test_a_run_whose_draws_took_no_client_states_the_ledgers_epsilon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every round's draw comes out empty: each is noised, released and
    # charged, but no client ever replied, so no client's figures held the
    # charge. Before, summary.json's epsilon was None and the model card said
    # the cost was in "each client's privacy ledger", which clients of a
    # central run do not have.
    monkeypatch.setattr(adaptive_clipping._SAMPLER, "random", lambda: 0.9)
    settings = settings_from_dict(
        {**_central_run("strategy.fraction_train=0.5"), "run_dir": str(tmp_path)}
    )
    plan = plan_client_level(settings)

    summary = run_federation(FakeGrid(2), settings)

    # The ledger against Opacus' own accountant, fed (z, q) three times.
    accountant = PRVAccountant()
    for _ in range(3):
        accountant.step(noise_multiplier=plan.noise_multiplier, sample_rate=0.5)
    independent = accountant.get_epsilon(delta=plan.delta)
    spent = _ledger_epsilon(tmp_path)
    assert spent == pytest.approx(independent, rel=1e-3)
    guarantee = summary["privacy_guarantee"]
    assert guarantee["epsilon"] == pytest.approx(spent)
    assert guarantee["delta"] == pytest.approx(plan.delta)
    card = (tmp_path / "model" / "README.md").read_text()
    assert "epsilon at most 8" in card
    assert "no client reported" not in card
    # Each round's line in metrics.jsonl too (before, empty: no reply).
    charged = json.loads((tmp_path / CENTRAL_LEDGER_FILE).read_text())["rounds"]
    rounds = read_rounds(tmp_path)
    assert [r["epsilon_max"] for r in rounds] == pytest.approx(
        [r["epsilon"] for r in charged]
    )


def test_a_resume_that_runs_no_round_states_the_ledgers_epsilon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed after round 3 was charged, before its checkpoint: the resumed
    # run has no budget for round 3 and stops at once, and its summary took
    # the checkpoint's figures of 2 rounds (epsilon 5.81, card "at most 5.9",
    # each client's row too) while the ledger holds 3 (7.99).
    raw = _central_run()
    save = checkpointing.SaveCheckpoint.after_round

    def killed_in_round_3(self: Any, state: Any, metrics: Any) -> Any:
        if state.round == 3:
            raise Killed
        return save(self, state, metrics)

    monkeypatch.setattr(checkpointing.SaveCheckpoint, "after_round", killed_in_round_3)
    with logging_restored(), pytest.raises(Killed):
        run_federation(
            FakeGrid(2), settings_from_dict({**raw, "run_dir": str(tmp_path)})
        )
    monkeypatch.setattr(checkpointing.SaveCheckpoint, "after_round", save)

    resumed = settings_from_dict({**raw, "resume": True, "run_dir": str(tmp_path)})
    summary = run_federation(FakeGrid(2), resumed)

    spent = _ledger_epsilon(tmp_path)
    assert spent > 7.9
    assert summary["privacy_guarantee"]["epsilon"] == pytest.approx(spent)
    assert [c["epsilon"] for c in summary["clients"]] == pytest.approx([spent] * 2)
    card = (tmp_path / "model" / "README.md").read_text()
    assert "epsilon at most 8" in card


def test_the_console_states_the_ledgers_epsilon_rounded_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A ledger's 6.233153 (2 rounds at z 0.4788, q 0.5, delta 0.025) was
    # "epsilon max 6.23" on the round's line, and a run's 7.99129 "max client
    # epsilon 7.991" on its last: each below what the ledger spent.
    spent = 6.233153328867376
    state = RoundState(
        round=2,
        model_name="teacher",
        messages=[],
        answered=0,
        accepted=[],
        failures=[],
        train_metrics=None,
    )
    metrics = {
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "clients_aggregated": 1,
        "clients_selected": 1,
        "epsilon_max": spent,
        "epsilon_mean": spent,
        "seconds": 1.0,
    }
    summary = {
        "final_accuracy": 0.5,
        "final_macro_f1": 0.5,
        "wall_seconds": 1.0,
        "privacy_guarantee": {"epsilon": 7.99129354471155, "unstated": None},
    }
    with caplog.at_level("INFO", logger="fedmodel"):
        ConsoleLine(total_rounds=3, min_replies=1).after_round(state, metrics)
        _say_done(summary, tmp_path)
    assert "epsilon max 6.24 mean 6.24" in caplog.text
    assert "max client epsilon 7.992," in caplog.text


def test_the_servers_lines_state_the_epsilon_spent_rounded_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # They gave 4 significant digits, to the nearest: less than was spent.
    settings = dataclasses.replace(
        small_settings("privacy=central", "num_clients=4"), run_dir=str(tmp_path)
    )

    def strategy() -> central_dp.ClientLevelDPStrategy:
        base = BudgetAwareStrategy(
            build_strategy(settings.strategy, num_clients=4), expected_shapes={}
        )
        return central_dp.ClientLevelDPStrategy(base, settings=settings)

    ledger = strategy().dp.ledger
    for round_number in (1, 2):  # the plan's rounds: the budget is spent
        ledger.charge(round_number=round_number, steps=1)
    spent = decimals_up(ledger.epsilon, 4)
    assert float(spent) >= ledger.epsilon and len(spent.split(".")[1]) == 4
    caplog.set_level(logging.INFO, logger="fedmodel")
    again = strategy()
    assert f"({spent} spent so far)" in caplog.text
    assert again.configure_train(3, ArrayRecord(), ConfigRecord(), FakeGrid(4)) == []
    assert f"budget 8 spent (epsilon {spent})" in caplog.text
    with pytest.raises(BudgetExhausted) as refused:
        again.dp.ledger.charge(round_number=3, steps=1)
    assert f"from {spent} to " in str(refused.value)
