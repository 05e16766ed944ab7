"""Andrew et al.'s adaptive clipping, on Flower's wrapper: sampled, summed, noised.

One round of central, client-level DP (`privacy=central`): each node is kept
with probability q, drawn from the operating system; the round is charged to
the ledger; each client's whole update is clipped to the adaptive norm, the
clipped updates are summed, divided by q N and noised; then the norm moves
towards the quantile it targets. The strategy around it
(`federation/central_dp.py`) opens the ledger and stops at the budget.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    Strategy,
)
from flwr.supercore.differential_privacy import adaptive_clip_inputs_inplace

from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.federation.messages import ARRAYS_KEY
from fedmodel.privacy.client_level import clipped_count_stddev
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_cap import BudgetExhausted

log = logging.getLogger(__name__)

# Who takes part in a round must be secret from whoever sees the model, as
# the accountant's Poisson sampling assumes: drawn from the operating system.
_SAMPLER = random.SystemRandom()


def round_noise() -> np.random.Generator:
    """A generator for one round's noise, seeded from the operating system.

    Flower's helpers draw from numpy's global generator, which any code in
    the server process can seed (`np.random.seed`), making the noise
    reproducible, and subtractable, by whoever knows the seed. A fresh 128-bit
    seed from `secrets` per round leaves nothing to know. What it does not
    address: the floating-point attacks on sampled Gaussians (Mironov 2012).
    """
    return np.random.default_rng(secrets.randbits(128))


def next_clipping_norm(
    norm: float, clipped_fraction: float, *, target: float, step: float
) -> float:
    """The clipping norm for the next round (Andrew et al.'s geometric update).

    The norm grows while more than `target` of the updates are clipped and
    shrinks while fewer are, so it settles where `target` of them are: the
    paper's C exp(-step (unclipped fraction - (1 - target))). Flower 1.41
    applies C exp(-step (clipped fraction - target)), the clipped fraction
    in place of the unclipped one, which shrinks the norm further the more
    updates it clips and never settles.
    """
    return norm * math.exp(step * (clipped_fraction - target))


class LedgeredAdaptiveClipping(DifferentialPrivacyServerSideAdaptiveClipping):
    """Flower's wrapper, with Poisson sampling and a sum over a fixed denominator.

    Flower's settings, clipping and noise are kept; its aggregation is not.
    It averages the updates that came back, so how many took part would show
    in the result, and it adds noise at the norm it moved to after clipping
    (C_t+1, where C_t bounds what one client moved the result). Here a round
    is charged to the ledger first, then the clipped updates are summed,
    divided by q N (`num_sampled_clients`, the same in every round), noised
    at z_D C_t / (q N), and only then the norm moves, in the paper's direction
    (`next_clipping_norm`), from a noised count of the clipped updates less
    half the updates summed, so that one client moves it by 1/2 at most. A
    round in which no client was sampled, or none replied, is noised and
    charged all the same.

    z is the ledger's noise multiplier, the one charged. Flower's constructor
    splits it (Andrew et al.'s Theorem 1): `self.noise_multiplier` becomes the
    updates' share z_D = (z^-2 - (2 sigma_b)^-2)^-1/2, above z, and the count
    is noised at sigma_b (`clipped_count_stddev`); the two releases together
    cost what z alone does.
    """

    def __init__(
        self, inner: Strategy, *, settings: RunSettings, ledger: PrivacyLedger
    ) -> None:
        privacy = settings.privacy
        # q is the ledger's, the plan it was charged for (a resume that
        # changes strategy.fraction_train is refused); q N is every round's
        # divisor, the clients a round samples on average.
        expected = ledger.sample_rate * settings.num_clients
        try:
            super().__init__(
                inner,
                noise_multiplier=ledger.noise_multiplier,
                num_sampled_clients=expected,  # type: ignore[arg-type]
                initial_clipping_norm=privacy.initial_clipping_norm,
                target_clipped_quantile=privacy.target_clipped_quantile,
                clip_norm_lr=privacy.clip_norm_lr,
                clipped_count_stddev=clipped_count_stddev(
                    settings, ledger.noise_multiplier, expected_clients=expected
                ),
            )
        except ValueError as exc:
            raise FedmodelError(f"privacy=central settings rejected: {exc}") from exc
        self.sample_rate = ledger.sample_rate
        self.ledger = ledger
        self.nodes: list[int] = []  # the nodes of the last round's draw

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """Every node's message, each kept with probability q."""
        self.current_arrays = arrays
        messages = list(
            self.strategy.configure_train(server_round, arrays, config, grid)
        )
        self.nodes = [int(m.metadata.dst_node_id) for m in messages]
        return [m for m in messages if _SAMPLER.random() < self.sample_rate]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Charge the round, then clip, sum over q N, noise; None once spent."""
        try:
            self.ledger.charge(round_number=server_round, steps=1)
        except BudgetExhausted as exc:
            log.warning("%s", exc)  # it names the round
            self.ledger.mark_exhausted()
            return None, None
        names = list(self.current_arrays.keys())
        current = self.current_arrays.to_numpy_ndarrays()
        total = [np.zeros_like(array) for array in current]
        clipped = counted = 0
        for reply in replies:
            counted += 1
            # By name: a reply may list its arrays in another order.
            arrays = reply.content.array_records[ARRAYS_KEY]
            received = [arrays[name].numpy() for name in names]
            update = [np.subtract(r, c) for r, c in zip(received, current, strict=True)]
            if any(np.any(part) for part in update):  # Flower divides by the norm
                clipped += int(adaptive_clip_inputs_inplace(update, self.clipping_norm))
            for summed, part in zip(total, update, strict=True):
                summed += part
        m = self.num_sampled_clients
        # Each summed update's bit less a half, the half added back after the
        # division: one client moves the noised count by 1/2 at most, the
        # sensitivity Flower's split of z into update and count noise assumes
        # (Andrew et al.'s Theorem 1). The bits themselves move it by 1. Drawn
        # before the model's noise, as Flower does.
        noise = round_noise()
        centred = noise.normal(clipped - counted / 2, self.clipped_count_stddev)
        clipped_fraction = 0.5 + float(centred) / m
        stddev = self.noise_multiplier * self.clipping_norm / m
        log.info("central DP noise with %.4f standard deviation added", stddev)
        noised = ArrayRecord(
            {
                key: Array(
                    np.asarray(
                        c + s / m + noise.normal(0.0, stddev, c.shape).astype(c.dtype)
                    )
                )
                for key, c, s in zip(names, current, total, strict=True)
            }
        )
        self.clipping_norm = next_clipping_norm(
            self.clipping_norm,
            clipped_fraction,
            target=self.target_clipped_quantile,
            step=self.clip_norm_lr,
        )
        return noised, None
