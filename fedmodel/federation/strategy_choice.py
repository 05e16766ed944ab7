"""Flower's strategies by config name (`strategy.name`), with fedmodel's sampling.

The server wraps the one chosen in `BudgetAwareStrategy` (`strategy.py`).
Flower's strategy offers every node a message; which clients a round trains
under `strategy.fraction_train` below 1 is `ClientChoice`'s: Flower 1.41
samples node ids with Python's unseeded `random.sample`, and draws node ids
anew for each simulation, so two runs of one seed trained other clients.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    Strategy,
)

from fedmodel.config import RunSettings, StrategySettings
from fedmodel.config.round_size import chosen_count
from fedmodel.errors import FedmodelError
from fedmodel.privacy.modes import privacy_mode

log = logging.getLogger(__name__)

# Keeps the client choice's stream apart from every other use of the seed.
_CHOICE_STREAM = 0xC401CE


@dataclass(frozen=True)
class ClientChoice:
    """Which clients train in a round: a share of them, drawn from (seed, round)."""

    seed: int
    fraction: float
    minimum: int

    def chosen(self, client_ids: Iterable[int], *, server_round: int) -> set[int]:
        """`fraction` of `client_ids` (at least `minimum`), the same in every run.

        Drawn over the ids in order, not over node ids, which Flower draws
        anew for each simulation and SuperNode connection.
        """
        ids = sorted(set(client_ids))
        size = chosen_count(len(ids), fraction=self.fraction, minimum=self.minimum)
        draw = np.random.default_rng([self.seed, _CHOICE_STREAM, server_round])
        return {ids[int(i)] for i in draw.choice(len(ids), size=size, replace=False)}


def client_choice(settings: RunSettings) -> ClientChoice | None:
    """The run's `ClientChoice`; None where every client trains in every round.

    None under privacy=central too: its Poisson sampling of clients must stay
    secret from whoever knows the config's seed (`adaptive_clipping.py`).
    At least `federation.min_replies` are chosen while that many have budget
    left: a round of fewer, each accepted, would be kept below it. With every
    client's budget left that adds none (`check_min_replies` refuses a
    minimum the round's share would not reach).
    """
    strategy = settings.strategy
    if strategy.fraction_train >= 1.0 or privacy_mode(settings.privacy).server_noise:
        return None
    least = max(strategy.min_train_clients, settings.federation.min_replies)
    return ClientChoice(
        seed=settings.seed,
        fraction=strategy.fraction_train,
        minimum=min(least, settings.num_clients),
    )


def _sampling(settings: StrategySettings, nodes: int) -> dict[str, Any]:
    """Client-sampling arguments shared by all strategies: every node is offered.

    Client-side evaluation stays off (fraction_evaluate=0): it would touch
    client records outside the DP budget; the server evaluates on its own split.
    """
    if not 0.0 < settings.fraction_train <= 1.0:
        raise FedmodelError(
            f"strategy.fraction_train must be in (0, 1], got {settings.fraction_train}"
        )
    minimum = min(settings.min_train_clients, nodes)
    return {
        "fraction_train": 1.0,  # `ClientChoice`, or central DP's draw, samples
        "fraction_evaluate": 0.0,
        "min_train_nodes": minimum,
        "min_available_nodes": minimum,
    }


def _fedavg(settings: StrategySettings, nodes: int) -> Strategy:
    return FedAvg(**_sampling(settings, nodes))


def _fedprox(settings: StrategySettings, nodes: int) -> Strategy:
    return FedProx(**_sampling(settings, nodes), proximal_mu=settings.proximal_mu)


def _fedadam(settings: StrategySettings, nodes: int) -> Strategy:
    return FedAdam(
        **_sampling(settings, nodes),
        eta=settings.eta,
        eta_l=settings.eta_l,
        beta_1=settings.beta_1,
        beta_2=settings.beta_2,
        tau=settings.tau,
    )


def _median(settings: StrategySettings, sampling: dict[str, Any]) -> Strategy:
    return FedMedian(**sampling)


def _trimmed_mean(settings: StrategySettings, sampling: dict[str, Any]) -> Strategy:
    if not 0.0 <= settings.trim_beta < 0.5:
        raise FedmodelError(
            f"strategy.trim_beta must be in [0, 0.5), got {settings.trim_beta}"
        )
    return FedTrimmedAvg(**sampling, beta=settings.trim_beta)


# Against a poisoned site: the coordinate-wise median, or the mean after
# cutting the `trim_beta` share of largest and smallest values.
ROBUST_METHODS: dict[str, Callable[[StrategySettings, dict[str, Any]], Strategy]] = {
    "median": _median,
    "trimmed_mean": _trimmed_mean,
}


def _robust(settings: StrategySettings, nodes: int) -> Strategy:
    method = ROBUST_METHODS.get(settings.robust_method)
    if method is None:
        raise FedmodelError(
            f"strategy.robust_method {settings.robust_method!r} is unknown; choose "
            f"one of {sorted(ROBUST_METHODS)}"
        )
    return method(settings, _sampling(settings, nodes))


STRATEGIES: dict[str, Callable[[StrategySettings, int], Strategy]] = {
    "fedavg": _fedavg,
    "fedprox": _fedprox,
    "fedadam": _fedadam,
    "robust": _robust,
}


def build_strategy(settings: StrategySettings, *, num_clients: int) -> Strategy:
    """The Flower strategy named by `strategy.name`."""
    try:
        factory = STRATEGIES[settings.name]
    except KeyError:
        raise FedmodelError(
            f"strategy.name {settings.name!r} is unknown; choose one of "
            f"{sorted(STRATEGIES)}"
        ) from None
    return factory(settings, num_clients)


def say_if_waiting(inner: Strategy, grid: Grid, *, server_round: int) -> None:
    """Say on the console when a round waits for SuperNodes to connect.

    Flower's sampling waits, with no time limit, until the strategy's
    minimum of nodes is connected, and says so only in the run's log (a line
    a second): the operator of a deployment whose site is not up yet, or gone
    for good, saw the run stop after its last line without a word.
    """
    needed = max(
        int(getattr(inner, "min_available_nodes", 0)),
        int(getattr(inner, "min_train_nodes", 0)),
    )
    connected = len(list(grid.get_node_ids()))
    if connected >= needed:
        return
    log.warning(
        "round %d: waiting for SuperNodes to connect: %d connected, and the round "
        "starts once %d are (strategy.min_train_clients, or num_clients where "
        "fewer). Start the missing sites' SuperNodes, or lower "
        "strategy.min_train_clients to go on without them",
        server_round,
        connected,
        needed,
    )
