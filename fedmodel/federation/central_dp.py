"""Central, client-level DP (`privacy=central`) through Flower's adaptive clipping.

The server clips each client's whole update (Flower's
`DifferentialPrivacyServerSideAdaptiveClipping`, Andrew et al. 2021), averages
the clipped updates with equal weights and adds Gaussian noise. The noise
multiplier is calibrated before round 1 so that `num_rounds` rounds spend
`privacy.target_epsilon` (Opacus accountant; every client trains every round,
so q = 1). Each round is charged to a write-ahead ledger in the run folder
before its noised model is released, as a client's DP-SGD rounds are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    FedAvg,
    Strategy,
)

from fedmodel.config import RunSettings
from fedmodel.config.delta_rule import weak_delta_warning
from fedmodel.errors import FedmodelError
from fedmodel.federation.messages import METRICS_KEY
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.privacy.client_level import (
    CLIENT_LEVEL_ID,
    clipped_count_stddev,
    plan_client_level,
    sampled_clients,
)
from fedmodel.privacy.ledger import BudgetExhausted, PrivacyLedger
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE

log = logging.getLogger(__name__)

# Equal weights: the noise std (z * C / m) bounds one client's effect on an
# unweighted mean of m clipped updates, not on a record-count-weighted one.
UNIFORM_WEIGHT_KEY = "central-dp-weight"


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


class _LedgeredAdaptiveClipping(DifferentialPrivacyServerSideAdaptiveClipping):
    """Flower's wrapper, charging the ledger before each noised aggregate.

    Flower 1.41 clips a round's updates to the norm C_t, then moves the norm
    to C_t+1 and only then adds noise, at C_t+1. The noise must be z * C_t / m,
    since C_t bounds what one client moved the mean; when most updates are
    clipped C_t+1 is the smaller, and the round spends more than the ledger
    charges. Here the norm moves only after the round's noise is added, and
    in the paper's direction (`next_clipping_norm`).
    """

    _next_clipped_fraction: float | None = None

    def __init__(
        self, inner: Strategy, *, settings: RunSettings, ledger: PrivacyLedger
    ) -> None:
        privacy = settings.privacy
        try:
            super().__init__(
                inner,
                noise_multiplier=ledger.noise_multiplier,
                num_sampled_clients=sampled_clients(settings),
                initial_clipping_norm=privacy.initial_clipping_norm,
                target_clipped_quantile=privacy.target_clipped_quantile,
                clip_norm_lr=privacy.clip_norm_lr,
                clipped_count_stddev=clipped_count_stddev(
                    settings, ledger.noise_multiplier
                ),
            )
        except ValueError as exc:
            raise FedmodelError(f"privacy=central settings rejected: {exc}") from exc
        self.ledger = ledger

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Charge the round, then clip, average with equal weights and noise."""
        replies = list(replies)
        if len(replies) != self.num_sampled_clients:
            # The noise covers one client's share of m updates, not of fewer.
            log.warning(
                "round %d: %d of %d sampled clients replied; central DP noise is "
                "calibrated for %d, so this round's aggregate is dropped",
                server_round,
                len(replies),
                self.num_sampled_clients,
                self.num_sampled_clients,
            )
            return None, None
        try:
            self.ledger.charge(round_number=server_round, steps=1)
        except BudgetExhausted as exc:
            log.warning("%s", exc)  # it names the round
            self.ledger.mark_exhausted()
            return None, None
        for reply in replies:
            reply.content.metric_records[METRICS_KEY][UNIFORM_WEIGHT_KEY] = 1.0
        result = super().aggregate_train(server_round, replies)
        if self._next_clipped_fraction is not None:
            self.clipping_norm = next_clipping_norm(
                self.clipping_norm,
                self._next_clipped_fraction,
                target=self.target_clipped_quantile,
                step=self.clip_norm_lr,
            )
            self._next_clipped_fraction = None
        return result

    def _geometric_update(self, clipped_fraction: float) -> None:
        """Keep the norm for this round's noise; `aggregate_train` moves it after."""
        self._next_clipped_fraction = clipped_fraction


class ClientLevelDPStrategy(BudgetAwareStrategy):
    """The budget-aware strategy with the server's client-level DP inside it."""

    def __init__(self, base: BudgetAwareStrategy, *, settings: RunSettings) -> None:
        if not isinstance(base.inner, FedAvg):
            raise FedmodelError(
                "privacy=central needs a FedAvg-family strategy (strategy=fedavg "
                "or fedprox)"
            )
        plan = plan_client_level(settings)
        ledger = PrivacyLedger.open(
            Path(settings.run_dir) / CENTRAL_LEDGER_FILE,
            client_id=CLIENT_LEVEL_ID,
            plan=plan,
            data_fingerprint=f"{settings.num_clients}-clients",
        )
        base.inner.weighted_by_key = UNIFORM_WEIGHT_KEY
        self.dp = _LedgeredAdaptiveClipping(
            base.inner, settings=settings, ledger=ledger
        )
        super().__init__(self.dp, expected_shapes=base.expected_shapes)
        # The ledger's figures: a ledger that holds charges keeps its noise.
        log.info(
            "central DP: noise multiplier %.4f over %d rounds, q=%.3g, delta %.3g: "
            "client-level epsilon %g (%.4g spent so far)",
            ledger.noise_multiplier,
            plan.planned_rounds,
            ledger.sample_rate,
            ledger.delta,
            ledger.target_epsilon,
            ledger.epsilon,
        )
        weak = weak_delta_warning(
            plan.delta,
            who="client-level DP",
            n=settings.num_clients,
            client_level=True,
        )
        if weak is not None:
            log.warning("%s", weak)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """No messages once one more noised round would pass the budget."""
        if self.dp.ledger.would_exceed(1):
            log.warning(
                "round %d: client-level budget %g spent (epsilon %.4g)",
                server_round,
                self.dp.ledger.target_epsilon,
                self.dp.ledger.epsilon,
            )
            return []
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None, list[Message]]:
        """Aggregate; every client's figures become the run's client-level ones."""
        result = super().aggregate_train(server_round, replies)
        # Under the keys clients use for record-level DP.
        figures = self.dp.ledger.reported_figures()
        for client in self.client_figures.values():
            client.update(figures)
        return result
