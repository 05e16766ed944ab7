"""`fedmodel privacy-plan` prints the plan every client's ledger then records.

With `distill=federated` the clients also train the student under DP-SGD, so
their noise covers the teacher's and the student's rounds; the plan printed
before the run must be exactly that plan, round by round.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.federation.simulation import simulate
from fedmodel.privacy.ledger_reset import LEDGER_FILE
from tests.conftest import SMALL_RUN, small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEDERATED_DISTILL = [
    "privacy=dpsgd",
    "privacy.target_epsilon=4",
    "num_rounds=2",
    "distill=federated",
    "distill.rounds=1",
    "distill.epochs=1",
    "finetune.local_epochs=1",
]


def test_printed_plan_equals_every_client_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command(["privacy-plan", "--json", *SMALL_RUN, *FEDERATED_DISTILL]) == 0
    plans = json.loads(capsys.readouterr().out)

    summary = simulate(small_config(*FEDERATED_DISTILL), run_dir=tmp_path)

    assert [plan["client"] for plan in plans] == ["0", "1", "2"]
    assert len(summary["clients"]) == 3
    for plan in plans:
        ledger = json.loads(
            (
                tmp_path / "clients" / f"client-{plan['client']}" / LEDGER_FILE
            ).read_text()
        )
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
        assert charged[-1]["epsilon"] <= 4.0
