"""Before a round trains, each selected client's ledger is checked against the record.

A client whose state folder was deleted, or whose ledger was replaced by an
older copy, opens a fresh ledger: its budget starts again, and it would train
and send an update that budget never allowed. The server knows what it
recorded each client spending (its checkpoint keeps that across a resume); a
client cannot know without being told, and telling one site another's figures
would reveal its record count. So in a round where the server holds recorded
figures, each selected node's ledger is compared with the record
(`ledger_holding.ledger_regression`) before it trains, one of two ways:

- A node that reported its client's recorded figures in this server process
  gets them back in its train message, with that client's id
  (`RECORDED_KEY`). The client compares them with its ledger file before it
  reads a record or charges, and refuses to train on less
  (`continuity.check_recorded_ledger`). No extra message: from its first
  reply on, this is every node of a run.
- Any other node (in a resumed run's first round; a site that came back
  under a new node id) is first sent a query message. It answers with its
  client id and what its ledger file holds (it reads no record and charges
  nothing); the strategy compares that with its record, and only the nodes
  that pass are sent the round's train message.

Node ids do not identify clients for long: Flower 1.41 draws them at random
for each simulation and, without node authentication, for each SuperNode
connection. Within one server process a node stays the node that replied, so
figures go back only to the node they came from, never to another node that
names the same client.
"""

from __future__ import annotations

import logging
import time

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedmodel.config.wording import plural
from fedmodel.federation.client_binding import reported_client
from fedmodel.federation.continuity import recorded_for
from fedmodel.federation.messages import (
    CONFIG_KEY,
    RECORDED_KEY,
    RUN_DIR_KEY,
    VERSION_KEY,
)
from fedmodel.federation.strategy import BudgetAwareStrategy

log = logging.getLogger(__name__)


def check_ledgers(
    grid: Grid,
    strategy: BudgetAwareStrategy,
    messages: list[Message],
    *,
    server_round: int,
    train_config: ConfigRecord,
    timeout: float,
) -> tuple[list[Message], int]:
    """The round's train messages to send, each checked; unanswered queries.

    A message to a node that reported its client's recorded figures carries
    them; the other nodes are asked first (`ask_ledgers`), but those whose
    answer passed earlier in this round, as the round's `ClientChoice` drew
    (`client_choice.py`): before, a resume's first round asked them twice.
    """
    unknown = []
    for message in messages:
        node = message.metadata.dst_node_id
        if node in strategy.round_checked:
            continue
        client_id = reported_client(strategy.reporters, node)
        if client_id is None:
            unknown.append(message)
        else:
            _carry_recorded(message, client_id, strategy.client_figures[client_id])
    if not unknown:
        return messages, 0
    return ask_ledgers(
        grid,
        strategy,
        unknown,
        server_round=server_round,
        train_config=train_config,
        timeout=timeout,
    )


def _carry_recorded(
    message: Message, client_id: int, figures: dict[str, float]
) -> None:
    """Add what the server recorded for `client_id` to this message alone."""
    record = ConfigRecord({**recorded_for(client_id, figures)})
    # The inner strategy gives all of a round's messages one content.
    message.content = RecordDict({**message.content, RECORDED_KEY: record})


def ask_ledgers(
    grid: Grid,
    strategy: BudgetAwareStrategy,
    messages: list[Message],
    *,
    server_round: int,
    train_config: ConfigRecord,
    timeout: float,
) -> tuple[list[Message], int]:
    """The round's train messages less those `messages` held back; unanswered queries.

    Each node of `messages` is asked what its ledger holds; one whose ledger
    lost charges, or that did not answer, is sent no train message. Its
    answer names its client id too, which a round's `ClientChoice` draws by
    (`client_choice.py`).

    A query carries the server's version (a client of another refuses it, as
    it would the train message) and the run folder (a simulated client's
    state folder is in it), nothing of any client's.
    """
    config = ConfigRecord(
        {key: train_config[key] for key in (VERSION_KEY, RUN_DIR_KEY)}
    )
    queries = [
        Message(
            content=RecordDict({CONFIG_KEY: config}),
            message_type=MessageType.QUERY,
            dst_node_id=message.metadata.dst_node_id,
            group_id=str(server_round),
        )
        for message in messages
    ]
    started = time.perf_counter()
    replies = list(grid.send_and_receive(queries, timeout=timeout))
    admitted = strategy.admit(server_round, queries, replies)
    asked = {query.metadata.dst_node_id for query in queries}
    log.info(
        "round %d: ledger query of %d %s took %.2f s; %d of them may train",
        server_round,
        len(queries),
        plural(len(queries), "node"),
        time.perf_counter() - started,
        sum(message.metadata.dst_node_id in asked for message in admitted),
    )
    return admitted, len(queries) - len(replies)
