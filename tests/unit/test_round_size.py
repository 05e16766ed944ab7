"""federation.min_replies against the clients a round trains, checked before round 1."""

from __future__ import annotations

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.federation.strategy_choice import client_choice
from tests.conftest import small_settings


def test_a_minimum_above_the_sampled_clients_is_refused() -> None:
    # 4 clients, fraction_train=0.5, min_replies=3: every round trained 2
    # clients and was kept, each update accepted, under a minimum of 3.
    half = ("num_clients=4", "strategy.fraction_train=0.5")
    with pytest.raises(FedmodelError) as refused:
        small_settings(*half, "federation.min_replies=3")
    assert str(refused.value) == (
        "federation.min_replies=3 is more than the 2 clients a round trains: "
        "strategy.fraction_train=0.5 of num_clients=4 (at least "
        "strategy.min_train_clients=2) chooses 2, and a round in which each is "
        "accepted is kept with 2 updates; lower federation.min_replies to 2, or "
        "raise strategy.fraction_train or strategy.min_train_clients"
    )
    # The count checked is the one the round's choice draws.
    settings = small_settings(*half, "federation.min_replies=2")
    choice = client_choice(settings)
    assert choice is not None
    assert len(choice.chosen(range(4), server_round=1)) == 2
    # strategy.min_train_clients raises the count, as it raises the draw.
    small_settings(*half, "federation.min_replies=3", "strategy.min_train_clients=3")


def test_a_minimum_above_num_clients_is_refused() -> None:
    with pytest.raises(FedmodelError) as refused:
        small_settings("num_clients=2", "federation.min_replies=3")
    assert str(refused.value) == (
        "federation.min_replies=3 is more than num_clients=2: every round trains "
        "at most the 2 clients, and a round in which each is accepted is kept "
        "with 2 updates; set federation.min_replies=2 or lower"
    )


def test_central_dp_refuses_a_minimum_above_its_expected_draw() -> None:
    # Poisson sampling: each client with probability q, so q N on average.
    central = ("privacy=central", "num_clients=4", "strategy.fraction_train=0.5")
    with pytest.raises(FedmodelError) as refused:
        small_settings(*central, "federation.min_replies=3")
    assert str(refused.value) == (
        "federation.min_replies=3 is more than the 2 clients a round draws on "
        "average under privacy=central: each of num_clients=4 takes part with "
        "probability strategy.fraction_train=0.5, and a round that draws fewer "
        "than federation.min_replies releases its noised model all the same; "
        "lower federation.min_replies to 2, or raise strategy.fraction_train"
    )
    small_settings(*central, "federation.min_replies=2")
    # The default minimum of 1 stays, however small the draw: a round that
    # draws no client is one that Poisson sampling allows.
    small_settings("privacy=central", "num_clients=4", "strategy.fraction_train=0.1")
