"""Which of the offered clients a round trains: by client id, the same for one seed.

Under `strategy.fraction_train` below 1 (not under privacy=central, whose draw
must stay secret: `adaptive_clipping.py`) the strategy offers every node that
has budget left and has not failed for good; `ClientChoice` draws the round's
share from their client ids and (seed, round); `strategy_choice.client_choice`
builds it from the settings, beside the strategy. A node's client id is the one
it named in a reply in this server process (`client_binding.py`); a node not
heard from yet (every node in a run's or a resume's first round, a site
that came back under a new node id) is first sent the ledger query, which
answers with its client id and what its ledger holds (`ledger_query.py`),
reading no record and charging nothing. One that fails the query, or does not
answer it, is not chosen in that round, and the round counts it apart from
its selected clients (`RoundChoice`); one chosen is not asked again before
it trains in that round (`check_ledgers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.app import ConfigRecord, Message
from flwr.serverapp import Grid

from fedmodel.federation.ledger_query import ask_ledgers
from fedmodel.federation.strategy import BudgetAwareStrategy


@dataclass(frozen=True)
class RoundChoice:
    """A round's train messages to its chosen clients, and whom the choice left out.

    `unanswered` and `refused` count the nodes its ledger query asked that
    did not answer it or whose answer was refused (their failures are the
    round's first). None of them was selected: they were asked about their
    ledger, never sent a train message.
    """

    messages: list[Message]
    unanswered: int = 0
    refused: int = 0


def choose_clients(
    grid: Grid,
    strategy: BudgetAwareStrategy,
    offered: list[Message],
    *,
    server_round: int,
    train_config: ConfigRecord,
    timeout: float,
) -> RoundChoice:
    """The train messages to the round's chosen clients; the nodes left out.

    `offered` are the strategy's train messages for this round. Without a
    `strategy.choice` every one is sent.
    """
    if strategy.choice is None or not offered:
        return RoundChoice(offered)
    named = strategy.binding.first_named
    unknown = [m for m in offered if m.metadata.dst_node_id not in named]
    unanswered, failed = 0, len(strategy.round_failures)
    if unknown:
        offered, unanswered = ask_ledgers(
            grid,
            strategy,
            unknown,
            server_round=server_round,
            train_config=train_config,
            timeout=timeout,
        )
    clients = {id(m): named[m.metadata.dst_node_id] for m in offered}
    chosen = strategy.choice.chosen(clients.values(), server_round=server_round)
    return RoundChoice(
        strategy.keep([m for m in offered if clients[id(m)] in chosen]),
        unanswered=unanswered,
        refused=len(strategy.round_failures) - failed,
    )
