"""How many clients a round trains, and the check that federation.min_replies fits.

A round in which every client chosen had its update accepted is kept however
few they were (`RoundState.short_of`), so a `federation.min_replies` above
the clients a round trains is never met and never stops a round: it is
refused before round 1. The count is `num_clients` from the config; a
deployment whose first round selects more sites than that is warned of then
(`rounds.check_selected_count`).
"""

from __future__ import annotations

import math

from fedmodel.config.schema import RunSettings
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError


def chosen_count(clients: int, *, fraction: float, minimum: int) -> int:
    """How many of `clients` a round trains under `strategy.fraction_train`.

    `fraction` of them, rounded down, at least `minimum` and at most all
    (`ClientChoice`).
    """
    return min(clients, max(int(clients * fraction), minimum))


def check_min_replies(settings: RunSettings) -> None:
    """Refuse a `federation.min_replies` more than the clients a round trains.

    Under privacy=central each client takes part with probability
    `strategy.fraction_train` (Poisson sampling, which its accounting
    assumes), so the count is random: refused where the expected draw, q N,
    is below a minimum above 1. A draw of fewer still releases its noised
    model (`ClientLevelDPStrategy.keeps_short_rounds`).
    """
    if settings.privacy.client_level:
        _check_expected_draw(settings)
        return
    strategy, clients = settings.strategy, settings.num_clients
    least = settings.federation.min_replies
    minimum = min(strategy.min_train_clients, clients)
    count = chosen_count(clients, fraction=strategy.fraction_train, minimum=minimum)
    if least <= count:
        return
    updates = f"{count} {plural(count, 'update')}"
    kept = f"a round in which each is accepted is kept with {updates}"
    if count == clients:
        raise FedmodelError(
            f"federation.min_replies={least} is more than num_clients={clients}: "
            f"every round trains at most the {clients} clients, and {kept}; set "
            f"federation.min_replies={clients} or lower"
        )
    raise FedmodelError(
        f"federation.min_replies={least} is more than the {count} clients a "
        f"round trains: strategy.fraction_train={strategy.fraction_train} of "
        f"num_clients={clients} (at least strategy.min_train_clients="
        f"{strategy.min_train_clients}) chooses {count}, and {kept}; lower "
        f"federation.min_replies to {count}, or raise strategy.fraction_train "
        "or strategy.min_train_clients"
    )


def _check_expected_draw(settings: RunSettings) -> None:
    """Refuse a minimum above 1 that the Poisson draw meets less than on average.

    A minimum of 1 (the default) stays: a draw of no client is a round that
    Poisson sampling allows, its noise released and charged.
    """
    least = settings.federation.min_replies
    rate, clients = settings.strategy.fraction_train, settings.num_clients
    expected = rate * clients
    if least <= max(1.0, expected):
        return
    raise FedmodelError(
        f"federation.min_replies={least} is more than the {expected:g} clients a "
        f"round draws on average under privacy=central: each of num_clients="
        f"{clients} takes part with probability strategy.fraction_train={rate}, "
        "and a round that draws fewer than federation.min_replies releases its "
        "noised model all the same; lower federation.min_replies to "
        f"{max(1, math.floor(expected))}, or raise strategy.fraction_train"
    )
