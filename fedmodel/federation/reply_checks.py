"""The strategy's checks of each client's reply: figures kept, failures recorded.

`BudgetAwareStrategy` (`strategy.py`) runs them on every train reply and on
every reply to a ledger query (`admit`). They check a reply holds weights
and numbers only, record why a client gave nothing usable, refuse a node
naming another client id than it did before, or one another node answers
for (`client_binding.py`) and, in a simulation, an id the server gave no
client, and refuse a client whose ledger reports less than the server
already saw it spend.
"""

from __future__ import annotations

import logging

from flwr.app import Message

from fedmodel.config.wording import decimals_up
from fedmodel.federation.client_binding import (
    ClientBinding,
    reported_before,
    reported_client,
)
from fedmodel.federation.messages import (
    CLIENT_ID_KEY,
    METRICS_KEY,
    ClientFailure,
    metrics_problem,
    read_failure,
    reply_problem,
)
from fedmodel.federation.spent_budgets import (
    figures_to_keep,
    is_spent,
    kept_epsilon,
    with_refused_reply,
)
from fedmodel.federation.train_replies import node_of
from fedmodel.privacy.figure_keys import LEDGER_RESETS_KEY
from fedmodel.privacy.ledger_holding import ledger_regression

log = logging.getLogger(__name__)


class ReplyChecks:
    """The reply checks of `BudgetAwareStrategy`, on the state it keeps.

    `BudgetAwareStrategy.__init__` sets the attributes below and says what
    each holds.
    """

    expected_shapes: dict[str, tuple[int, ...]]
    client_ids: range | None
    privacy_figures: bool
    simulated: bool
    spent_nodes: set[int]
    failed_nodes: set[int]
    client_figures: dict[int, dict[str, float]]
    reporters: dict[int, int]
    binding: ClientBinding
    round_failures: list[ClientFailure]
    round_spent: list[int]
    _sent: list[Message]

    def _accept(self, server_round: int, reply: Message) -> bool:
        reported = self._reported(server_round, reply, self._sent, trained=True)
        if reported is None:
            return False
        node, client_id, figures = reported
        previous = self.client_figures.get(client_id)
        # A simulated client's archived ledger got here only if it held all
        # that was recorded (`ledger_regression`): no budget started again.
        if (
            previous
            and not self.simulated
            and figures.get(LEDGER_RESETS_KEY, 0) > previous.get(LEDGER_RESETS_KEY, 0)
        ):
            log.warning(
                "round %d: client %d's privacy ledger was reset (its operator ran "
                "fedmodel ledger reset); its ledger's epsilon starts again from "
                "this round, but the run goes on counting the epsilon %s it was "
                "charged before (the model holds those rounds' updates) until "
                "the new figure passes it",
                server_round,
                client_id,
                decimals_up(kept_epsilon(previous), 4),
            )
        # Every charge a client reports counts, whether or not its update is used.
        self.client_figures[client_id] = figures_to_keep(figures, previous)
        self.reporters[client_id] = node
        if is_spent(figures):
            self.spent_nodes.add(node)
            self.round_spent.append(client_id)
            log.warning(
                "round %d: client %d has spent its privacy budget; its node is "
                "not selected again",
                server_round,
                client_id,
            )
            return False
        problem = reply_problem(reply.content, self.expected_shapes)
        if problem:
            reason = f"its update was rejected: {problem}"
            self._fail(ClientFailure(server_round, node, client_id, reason, True))
            return False
        return True

    def _reported(
        self, server_round: int, reply: Message, sent: list[Message], *, trained: bool
    ) -> tuple[int, int, dict[str, float]] | None:
        """A reply's node, client id and figures, if its ledger kept its charges.

        None, with the failure kept, for an error reply, one holding anything
        but numbers and a client id, one naming a client this node may not
        answer for (`ClientBinding.refusal`), or one whose ledger reports less
        than the server recorded for its client. Refused for naming its first
        id while another node answers for it, a train reply (`trained`: its
        site was charged and its update reached the server; a ledger query's
        reply carries no update) still leaves its epsilon and delta in that
        client's figures (`with_refused_reply`).
        """
        node = node_of(reply, sent)
        if reply.has_error():
            # Flower's reply for a lost node ("Node Unavailable") names no
            # client: the site it answered for is named, as a node id hides it.
            known = reported_client(self.reporters, node)
            self._fail(read_failure(server_round, reply, node_id=node, known=known))
            return None
        problem = metrics_problem(
            reply.content,
            privacy_figures=self.privacy_figures,
            client_ids=self.client_ids,
        )
        if problem:
            self._fail(ClientFailure(server_round, node, None, problem, True))
            return None
        figures = {
            key: float(value)  # type: ignore[arg-type]
            for key, value in reply.content.metric_records[METRICS_KEY].items()
        }
        client_id = int(figures[CLIENT_ID_KEY])
        refusal = self.binding.refusal(server_round, node=node, client_id=client_id)
        if refusal:
            self._fail(refusal)
            kept = self.client_figures.get(client_id)
            # Its own first id, which another node answers for: a second site
            # started with that --site-id, whose charge is counted all the same.
            own_id = self.binding.first_named[node] == client_id
            if trained and kept is not None and own_id:
                self.client_figures[client_id] = with_refused_reply(kept, figures)
            return None
        regression = ledger_regression(
            self.client_figures.get(client_id), figures, in_a_run=self.simulated
        )
        if regression:
            before = self.reporters.get(client_id, node)
            if before != node:
                regression += reported_before(client_id, before)
            self._fail(ClientFailure(server_round, node, client_id, regression, True))
            return None
        return node, client_id, figures

    def _fail(self, failure: ClientFailure) -> None:
        self.round_failures.append(failure)
        if failure.permanent:
            self.failed_nodes.add(failure.node_id)
