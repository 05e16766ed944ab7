"""`fedmodel privacy-plan --json` against the run, where the two could part.

test_files_plan.py holds sites of unequal files to their plan, and
test_federated_distill.py the student's rounds; here the other combinations a
user is likeliest to get wrong: non-IID clients of unequal sizes that a round
samples half of, under explicit settings that beat the budget rule, and
client-level DP whose server samples the clients. The plan printed first must
be, figure for figure, what the run then resolved, charged, summarised and
`fedmodel ledger show` says, and no client may spend more than the target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedmodel.cli.main import run_command
from fedmodel.config import compose_config
from fedmodel.config.wording import decimals_up
from fedmodel.federation.simulation import simulate
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE, LEDGER_FILE
from fedmodel.run.layout import simulated_client_dir
from tests.conftest import FEW_LATENCY_CALLS, ONE_ACTOR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# No warm start: the server's fit on its own records charges no client (it
# was 3 to 4 s of a run's CPU on 2 cores, against 1.2 to 1.4 s without).
SMOKE = ["model=tiny", "debug=smoke", ONE_ACTOR, "warm_start.enabled=false"]
# Three rounds, each sampling about half of four clients.
HALF_OF_FOUR = [
    "num_clients=4",
    "num_rounds=3",
    "strategy.fraction_train=0.5",
    "strategy.min_train_clients=1",
]
NON_IID_SAMPLED_SET = [
    *HALF_OF_FOUR,
    "partition=dirichlet",
    "partition.alpha=0.1",
    "privacy.accountant=rdp",
    "privacy.target_epsilon=1",
    "finetune.learning_rate=0.3",
    "finetune.batch_size=64",
    "finetune.local_epochs=2",
]
CLIENT_LEVEL_SAMPLED = [*HALF_OF_FOUR, "privacy=central", "privacy.target_epsilon=3"]


def _plan_then_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Path]:
    """The printed plan, then the run: plan, resolved config, summary, folder."""
    overrides = [*SMOKE, *FEW_LATENCY_CALLS, *overrides]
    assert run_command(["privacy-plan", "--json", *overrides]) == 0
    plan = json.loads(capsys.readouterr().out)
    run_dir = tmp_path / "run"
    summary = simulate(compose_config(overrides), run_dir=run_dir)
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    for key, shown in plan["training_settings"].items():
        group, _, name = key.rpartition(".")
        assert (resolved[group] if group else resolved)[name] == shown["value"], key
        rule = key in resolved["budget_rule_keys"]
        assert shown["source"] == ("budget" if rule else "set"), key
    return plan, resolved, summary, run_dir


def _charged_as_planned(
    planned: dict[str, Any], ledger: dict[str, Any], target: float
) -> None:
    """A ledger holds the plan's noise and, after its k-th charge, its k-th epsilon.

    A client a round leaves out is charged no step for it: its k-th charge
    spends what the plan states after round k, whichever round that was.
    """
    for key in ("noise_multiplier", "sample_rate", "delta"):
        assert ledger[key] == planned[key], key
    assert ledger["target_epsilon"] == target
    charged = ledger["rounds"]
    assert [charge["steps"] for charge in charged] == [
        planned["steps_per_round"]
    ] * len(charged)
    shown = planned["epsilon_by_round"][ledger["accountant"]][: len(charged)]
    assert [charge["epsilon"] for charge in charged] == pytest.approx(shown, rel=1e-9)
    assert charged[-1]["epsilon"] <= target


def test_non_iid_clients_a_round_samples_are_charged_their_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, resolved, summary, run_dir = _plan_then_run(
        tmp_path, capsys, NON_IID_SAMPLED_SET
    )
    assert resolved["budget_rule_keys"] == [
        "finetune.train_head_bias",
        "privacy.max_grad_norm",
        "privacy.grad_sample_mode",
    ]
    planned = {row["client"]: row for row in plan["clients"]}
    assert all(row["problem"] is None for row in planned.values())
    # Dirichlet(0.1) deals unequal clients: their delta, rate and noise differ.
    assert len({row["noise_multiplier"] for row in planned.values()}) > 1
    rows = {row["client_id"]: row for row in summary["clients"]}
    charged_rounds = 0
    for client, row in rows.items():
        ledger_path = simulated_client_dir(run_dir, client) / LEDGER_FILE
        ledger = json.loads(ledger_path.read_text())
        _charged_as_planned(planned[client], ledger, target=1.0)
        assert row["num_train_examples"] == planned[client]["num_records"]
        assert row["epsilon"] == ledger["rounds"][-1]["epsilon"]
        assert row["steps"] == sum(charge["steps"] for charge in ledger["rounds"])
        for key in ("noise_multiplier", "sample_rate", "delta", "accountant"):
            assert row[key] == ledger[key], key
        charged_rounds += len(ledger["rounds"])
        assert (
            run_command(["ledger", "show", "--state-dir", str(ledger_path.parent)]) == 0
        )
        said = capsys.readouterr().out
        # Rounded up, never down, as every epsilon fedmodel prints.
        assert f"epsilon {decimals_up(row['epsilon'], 4)} spent" in said
    # Half of the clients a round: some client sat a round out, and one that
    # no round chose spent nothing: no ledger, no row.
    assert charged_rounds < 3 * len(planned)
    for client in planned.keys() - rows.keys():
        assert not (simulated_client_dir(run_dir, client) / LEDGER_FILE).exists()
    guarantee = summary["privacy_guarantee"]
    assert guarantee["epsilon"] == max(row["epsilon"] for row in rows.values())
    assert guarantee["epsilon"] <= guarantee["target_epsilon"] == 1.0


def test_client_level_dp_over_sampled_clients_is_charged_its_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, _, summary, run_dir = _plan_then_run(tmp_path, capsys, CLIENT_LEVEL_SAMPLED)
    (planned,) = plan["clients"]
    assert planned["client"] is None and planned["sample_rate"] == 0.5
    assert planned["num_records"] == 4 and planned["planned_rounds"] == 3
    ledger = json.loads((run_dir / CENTRAL_LEDGER_FILE).read_text())
    _charged_as_planned(planned, ledger, target=3.0)
    # One step a round, whoever the round's draw held.
    assert [charge["round"] for charge in ledger["rounds"]] == [1, 2, 3]
    spent = ledger["rounds"][-1]["epsilon"]
    assert summary["privacy_guarantee"]["epsilon"] == spent
    for row in summary["clients"]:
        assert (row["epsilon"], row["steps"]) == (spent, 3)
        assert row["noise_multiplier"] == planned["noise_multiplier"]
