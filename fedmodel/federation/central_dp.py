"""Central, client-level DP (`privacy=central`) on Flower's adaptive clipping.

The server clips each client's whole update to an adaptive norm (Flower's
`DifferentialPrivacyServerSideAdaptiveClipping`, Andrew et al. 2021), adds
the clipped updates up, divides the sum by the expected number of clients
in a round, q N, and adds Gaussian noise. Each client takes part in a round
with probability q = `strategy.fraction_train`, independently (Poisson
sampling, the sampling the accountant assumes; q = 1: every client). The
noise multiplier is calibrated before round 1 so that `num_rounds` rounds
spend `privacy.target_epsilon`. Each round is charged to a write-ahead ledger
in the run folder before its noised model is released, as a client's DP-SGD
rounds are. A round's sampling, clipping and noise are
`federation/adaptive_clipping.py`'s; the strategy here opens the ledger,
stops at its budget and reports its figures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedmodel.config import RunSettings
from fedmodel.config.delta_rule import weak_delta_warning
from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.federation.adaptive_clipping import LedgeredAdaptiveClipping
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.federation.train_replies import by_client
from fedmodel.privacy.client_level import CLIENT_LEVEL_ID, plan_client_level
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE

log = logging.getLogger(__name__)


class ClientLevelDPStrategy(BudgetAwareStrategy):
    """The budget-aware strategy with the server's client-level DP inside it."""

    # A round short of min_replies released its noised model as any round
    # does, charged once to the run's one budget, planned for num_rounds: a
    # resume could not run it again within that budget.
    keeps_short_rounds = True

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
        base.inner.fraction_train = 1.0  # every node; the wrapper samples them
        self.dp = LedgeredAdaptiveClipping(base.inner, settings=settings, ledger=ledger)
        super().__init__(
            self.dp,
            expected_shapes=base.expected_shapes,
            simulated=base.simulated,
            client_ids=base.client_ids,
        )
        # The ledger's figures: a ledger that holds charges keeps its noise.
        log.info(
            "central DP: noise multiplier %.4f over %d rounds, q=%.3g, delta %.3g: "
            "client-level epsilon %g (%s spent so far)",
            ledger.noise_multiplier,
            plan.planned_rounds,
            ledger.sample_rate,
            ledger.delta,
            ledger.target_epsilon,
            decimals_up(ledger.epsilon, 4),
        )
        weak = weak_delta_warning(
            plan.delta,
            who="client-level DP",
            n=settings.num_clients,
            client_level=True,
        )
        if weak is not None:
            log.warning("%s", weak)

    def clipping_norm(self) -> float | None:
        """The norm the next round clips to, which a checkpoint keeps."""
        return float(self.dp.clipping_norm)

    def epsilons(self) -> list[float]:
        """The ledger's epsilon, the one budget every client shares.

        Also where no client has replied yet: an empty draw is charged too.
        """
        return [self.dp.ledger.epsilon]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """No messages once one more noised round would pass the budget.

        A round whose Poisson sample holds none of the nodes left to train
        still runs (`empty_round`): its noise is released and charged as any
        round's, since a model left as it was would show that no client took
        part.
        """
        self.empty_round = False
        if self.dp.ledger.would_exceed(1):
            log.warning(
                "round %d: client-level budget %g spent (epsilon %s)",
                server_round,
                self.dp.ledger.target_epsilon,
                decimals_up(self.dp.ledger.epsilon, 4),
            )
            return []
        messages = super().configure_train(server_round, arrays, config, grid)
        skipped = self.skipped_nodes
        left = [node for node in self.dp.nodes if node not in skipped]
        self.empty_round = not messages and bool(left)
        if self.empty_round:
            log.info(
                "round %d: the draw (q=%.3g) sampled none of the %d clients; the "
                "round's noise is added and charged all the same",
                server_round,
                self.dp.sample_rate,
                len(left),
            )
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None, list[Message]]:
        """Noise the valid updates' sum, even of none; the figures are the ledger's."""
        accepted = by_client([r for r in replies if self._accept(server_round, r)])
        arrays, metrics = self.dp.aggregate_train(server_round, accepted)
        self.report_ledger()
        return arrays, metrics, accepted

    def report_ledger(self) -> None:
        """Give every client's figures the ledger's, the one budget they share.

        Under the keys clients use for record-level DP. Also on a resume: the
        ledger may hold a round charged after the checkpoint was written.
        """
        figures = self.dp.ledger.reported_figures()
        for client in self.client_figures.values():
            client.update(figures)
