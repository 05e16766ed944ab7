"""A delta above 1e-3 is said: by `fedmodel privacy-plan` and once in a run's log.

A deployed site's own line, at launch and in its rounds, is tested in
test_launch.py and test_site.py.

Only said: the default 1/(10 n) and every noise calibrated with it stay.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import datasets
import pytest

from fedmodel.cli.main import run_command
from fedmodel.client.private_round import PrivateRound
from fedmodel.config.delta_rule import weak_delta_warning
from fedmodel.config.wording import three_digits_up
from fedmodel.federation.central_dp import ClientLevelDPStrategy
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.federation.strategy_choice import build_strategy
from tests.conftest import small_settings

# 60 records over 3 clients, 10% held out: 18 a client, delta 1/180.
TINY_CLIENTS = [
    "model=tiny",
    "task.max_train_examples=60",
    "num_clients=3",
    "partition=iid",
]
# The keys each client's plan has besides the warning: tests/integration/
# test_wheel.py and users' scripts read them.
PLAN_KEYS = {
    "client",
    "num_records",
    "one_over_n",
    "delta",
    "sample_rate",
    "steps_per_round",
    "planned_rounds",
    "noise_multiplier",
    "epsilon_rounds",
    "epsilon_by_round",
    "problem",
}


def test_a_delta_above_1e_3_names_the_client_its_records_and_what_to_do() -> None:
    assert weak_delta_warning(1e-3, who="client 0", n=100) is None
    assert weak_delta_warning(0.1, who="client 0", n=1) == (
        "client 0 (1 record): delta 0.1 is above 0.001, so its epsilon may "
        "fail to hold with probability up to 0.1. For a meaningful guarantee set "
        "privacy.target_delta=1e-5 (at a deployed site, its --delta 1e-5): a "
        "fixed delta must be below 1/n for every client, n its records"
    )
    assert weak_delta_warning(0.025, who="client-level DP", n=4, client_level=True) == (
        "client-level DP (4 clients): delta 0.025 is above 0.001, so its epsilon "
        "may fail to hold with probability up to 0.025. For a meaningful "
        "guarantee set privacy.target_delta=1e-5: a fixed delta must be below "
        "1/4, one over the number of clients"
    )
    # A deployed site names its own option: the server's key never reaches it.
    assert weak_delta_warning(
        0.05, who="site 2", n=2, site_option="--delta (node config delta)"
    ) == (
        "site 2 (2 records): delta 0.05 is above 0.001, so its epsilon may fail "
        "to hold with probability up to 0.05. For a meaningful guarantee set "
        "--delta (node config delta) to 1e-5: a fixed delta must be below 1/n, n "
        "the site's records"
    )


def test_privacy_plan_warns_of_a_weak_delta_and_still_plans(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_command(["privacy-plan", "--json", *TINY_CLIENTS]) == 0
    out, err = capsys.readouterr()
    plans = json.loads(out)["clients"]
    for plan in plans:
        # The plan is the default's, with the warning beside it.
        assert PLAN_KEYS | {"delta_warning"} == set(plan)
        assert plan["problem"] is None
        assert plan["delta"] == pytest.approx(1 / (10 * plan["num_records"]))
        said = plan["delta_warning"]
        assert said.startswith(
            f"client {plan['client']} ({plan['num_records']} records): delta "
            f"{three_digits_up(plan['delta'])} is above 0.001"
        )
        assert said in " ".join(err.split())  # on the console too, once
        assert " ".join(err.split()).count(said) == 1
    assert run_command(["privacy-plan", *TINY_CLIENTS]) == 0
    assert capsys.readouterr().out.count("delta > 0.001") == len(plans)
    # The advice it gives silences it.
    fixed = [*TINY_CLIENTS, "privacy.target_delta=1e-5"]
    assert run_command(["privacy-plan", "--json", *fixed]) == 0
    plans = json.loads(capsys.readouterr().out)["clients"]
    assert [plan["delta_warning"] for plan in plans] == [None] * len(plans)


def test_central_dp_in_privacy_plan_warns_for_few_clients(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The default config's 4 clients: delta 1/(10 * 4).
    assert run_command(["privacy-plan", "--json", "privacy=central"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)["clients"]
    assert plan["delta"] == 0.025
    assert plan["delta_warning"].startswith(
        "client-level DP (4 clients): delta 0.025 is above 0.001"
    )


def test_a_client_says_it_once_when_its_ledger_is_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = small_settings()
    split = datasets.Dataset.from_dict(
        {"text": [f"record {i}" for i in range(10)], "label": [0] * 10}
    )
    caplog.set_level(logging.WARNING, logger="fedmodel.client.private_round")
    first = PrivateRound.open(settings, client_id=4, state_dir=tmp_path, split=split)
    assert first.ledger.delta == 0.01  # the default 1/(10 n), unchanged
    assert caplog.messages == [weak_delta_warning(0.01, who="client 4", n=10)]
    assert first.charge(1)
    # The round charged the steps it planned.
    assert first.charged_steps == first.planned_steps > 0
    # Later rounds open the ledger it wrote: nothing more is said.
    PrivateRound.open(settings, client_id=4, state_dir=tmp_path, split=split)
    assert len(caplog.messages) == 1


def test_central_dp_says_it_when_the_server_plans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(
        small_settings("privacy=central", "num_clients=4"), run_dir=str(tmp_path)
    )
    base = BudgetAwareStrategy(
        build_strategy(settings.strategy, num_clients=4), expected_shapes={}
    )
    caplog.set_level(logging.WARNING, logger="fedmodel.federation.central_dp")
    strategy = ClientLevelDPStrategy(base, settings=settings)
    assert strategy.dp.ledger.delta == 0.025  # the default, unchanged
    said = [r.message for r in caplog.records if r.name.startswith("fedmodel")]
    assert said == [
        weak_delta_warning(0.025, who="client-level DP", n=4, client_level=True)
    ]


@pytest.mark.parametrize("simulated", [True, False])
def test_central_dp_keeps_whether_its_clients_are_simulated(
    tmp_path: Path, simulated: bool
) -> None:
    # The wrapper dropped it: under privacy=central a simulation's ledger
    # warnings were worded for a site (`fedmodel ledger reset`).
    settings = dataclasses.replace(
        small_settings("privacy=central", "num_clients=4"), run_dir=str(tmp_path)
    )
    base = BudgetAwareStrategy(
        build_strategy(settings.strategy, num_clients=4),
        expected_shapes={},
        simulated=simulated,
    )
    assert ClientLevelDPStrategy(base, settings=settings).simulated is simulated
