"""Server-side aggregation: the chosen Flower strategy, made budget-aware.

The wrapper stops sampling nodes whose client spent its privacy budget
(`spent_budgets.py`) or that failed for good; it does not know how updates
were noised (by each client's DP-SGD, or under `privacy=central` by the
strategy it wraps, `adaptive_clipping.py`). It checks every client's
reply (`reply_checks.py`): to the ledger query asked before the round
trains (`admit`), and to its train message. `strategy_choice.py` picks the
Flower strategy it wraps.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedmodel.federation.client_binding import ClientBinding
from fedmodel.federation.messages import ClientFailure, as_weights
from fedmodel.federation.reply_checks import ReplyChecks
from fedmodel.federation.spent_budgets import kept_epsilon
from fedmodel.federation.strategy_choice import ClientChoice, say_if_waiting
from fedmodel.federation.train_replies import by_client, with_shared_metrics
from fedmodel.privacy.figure_keys import EPSILON_KEY


class BudgetAwareStrategy(ReplyChecks):
    """Delegate to a Flower strategy, skipping clients spent or failed for good."""

    # Whether a round short of federation.min_replies keeps its aggregate
    # (`rounds.py`): not where each client's DP-SGD noised its own update.
    keeps_short_rounds = False

    def __init__(
        self,
        inner: Strategy,
        *,
        expected_shapes: dict[str, tuple[int, ...]],
        simulated: bool = False,
        privacy_figures: bool = False,
        client_ids: range | None = None,
        choice: ClientChoice | None = None,
    ) -> None:
        self.inner = inner
        # Which of the offered clients a round trains (`client_choice.py`);
        # None: every one.
        self.choice = choice
        self.expected_shapes = expected_shapes
        # The ids a reply may name (`metrics_problem`); None: sites name their own.
        self.client_ids = client_ids
        # Record-level DP: every reply must carry its ledger's figures.
        self.privacy_figures = privacy_figures
        # Simulated clients: `fedmodel ledger reset` refuses their folders.
        self.simulated = simulated
        # Nodes whose client said its budget is spent, in this process only.
        self.spent_nodes: set[int] = set()
        # Nodes that failed for a permanent reason: not selected again.
        self.failed_nodes: set[int] = set()
        # Each client's figures by client id: its latest report, with what the
        # run keeps of earlier replies (`spent_budgets.figures_to_keep`).
        self.client_figures: dict[int, dict[str, float]] = {}
        # The node each client's figures came from, in this server process only.
        self.reporters: dict[int, int] = {}
        # Which client id each node answers for (`client_binding.py`).
        self.binding = ClientBinding()
        # Why clients gave nothing usable in the latest round (reset as each
        # round is configured; its ledger query's refusals are among them).
        self.round_failures: list[ClientFailure] = []
        # The clients that answered "budget exhausted" in the latest round.
        self.round_spent: list[int] = []
        # Nodes whose ledger query passed in the latest round: not asked again.
        self.round_checked: set[int] = set()
        # The latest round selected no client but runs all the same: central
        # DP's Poisson draw came out empty (`federation/central_dp.py`).
        self.empty_round = False
        # This round's train messages (less those its ledger query held
        # back): the grid gives each an id as it sends it, and a reply names
        # the id it answers.
        self._sent: list[Message] = []

    def for_other_weights(
        self, inner: Strategy, *, expected_shapes: dict[str, tuple[int, ...]]
    ) -> BudgetAwareStrategy:
        """A wrapper for another model's weights that shares this one's budget state.

        Federated distillation trains the student with its own aggregation
        state, but a client that spent its budget on the teacher stays spent,
        and its latest figures stay in one place.
        """
        other = BudgetAwareStrategy(
            inner,
            expected_shapes=expected_shapes,
            simulated=self.simulated,
            privacy_figures=self.privacy_figures,
            client_ids=self.client_ids,
            choice=self.choice,
        )
        other.spent_nodes = self.spent_nodes
        other.failed_nodes = self.failed_nodes
        other.client_figures = self.client_figures
        other.reporters = self.reporters
        other.binding = self.binding
        return other

    @property
    def skipped_nodes(self) -> set[int]:
        """The nodes not sent a train message: budget spent, or failed for good."""
        return self.spent_nodes | self.failed_nodes

    def clipping_norm(self) -> float | None:
        """The server's adaptive clipping norm for the next round; None: none."""
        return None

    def epsilons(self) -> list[float]:
        """Each reporting client's epsilon, for a round's figures.

        A site whose operator reset its ledger counts with what it reported
        before, until its new budget's figure passes it, and a client with
        the epsilon of a reply refused for naming it, if larger (`kept_epsilon`).
        """
        figures = self.client_figures.values()
        return [kept_epsilon(c) for c in figures if EPSILON_KEY in c]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """The inner strategy's train messages, minus spent and failed clients."""
        self.round_failures, self.round_spent, self.round_checked = [], [], set()
        skipped = self.skipped_nodes
        say_if_waiting(self.inner, grid, server_round=server_round)
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        # A node refused for good takes no part, though it may stay connected.
        self.binding.connected = set(grid.get_node_ids()) - self.failed_nodes
        self._sent = [m for m in messages if m.metadata.dst_node_id not in skipped]
        return self._sent

    def keep(self, messages: list[Message]) -> list[Message]:
        """Send only `messages` of this round's train messages; returns them."""
        kept = {id(message) for message in messages}
        self._sent = [m for m in self._sent if id(m) in kept]
        return self._sent

    def admit(
        self, server_round: int, queries: list[Message], replies: Iterable[Message]
    ) -> list[Message]:
        """The round's train messages, less those to asked nodes that did not pass.

        `replies` answer `queries`, which asked nodes of this round's train
        messages what their ledger holds (`federation/ledger_query.py`). A
        node that answered with an error, with anything but numbers, or with a
        ledger that lost charges is sent no train message, and its failure is
        kept in `round_failures` as a train reply's would be; a node that did
        not answer is sent none either. The nodes that passed are kept in
        `round_checked`: `check_ledgers` does not ask them again this round.
        """
        asked = {int(query.metadata.dst_node_id) for query in queries}
        held = set(asked)
        for reply in replies:
            reported = self._reported(server_round, reply, queries, trained=False)
            if reported is not None:
                held.discard(reported[0])
        self.round_checked |= asked - held
        self._sent = [m for m in self._sent if m.metadata.dst_node_id not in held]
        return self._sent

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None, list[Message]]:
        """Aggregate valid updates; return them too, for per-client figures.

        Replies that say the budget is spent, carry an error, hold anything but
        the expected weights and numbers, or report a ledger that lost charges
        are left out; each failure is kept in `round_failures`. The rest are
        aggregated, and returned, in order of client id (`by_client`). The
        aggregate is float32, as the clients train it: FedAdam steps by
        float64 scalars.
        """
        accepted = by_client([r for r in replies if self._accept(server_round, r)])
        if not accepted:
            return None, None, []
        arrays, aggregated = self.inner.aggregate_train(
            server_round, with_shared_metrics(accepted)
        )
        return (None if arrays is None else as_weights(arrays)), aggregated, accepted
