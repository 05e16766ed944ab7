"""Before a round trains, each selected client says what its privacy ledger holds.

A client whose state folder was deleted, or whose ledger was replaced by an
older copy, opens a fresh ledger: its budget starts again, and it would train
and send an update that budget never allowed. The server knows what it
recorded each client spending (its checkpoint keeps that across a resume); a
client cannot know without being told, and telling one site another's figures
would reveal its record count. So in a round where the server holds recorded
figures, it first sends each selected node a query message. The node answers
with its client id and what its ledger file holds (it reads no record and
charges nothing); the strategy compares that with its record
(`continuity.ledger_regression`), and only the nodes that pass are sent the
round's train message.

The client names itself in its answer because node ids do not identify
clients for long: Flower 1.41 draws them at random for each simulation and,
without node authentication, for each SuperNode connection, so a resumed run
or a restarted site meets nodes the server has never seen.
"""

from __future__ import annotations

import logging
import time

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedmodel.federation.messages import CONFIG_KEY, RUN_DIR_KEY, VERSION_KEY
from fedmodel.federation.strategy import BudgetAwareStrategy

log = logging.getLogger(__name__)


def ask_ledgers(
    grid: Grid,
    strategy: BudgetAwareStrategy,
    messages: list[Message],
    *,
    server_round: int,
    train_config: ConfigRecord,
    timeout: float,
) -> tuple[list[Message], int]:
    """The train messages whose node's ledger kept its charges; unanswered queries.

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
    log.info(
        "round %d: ledger query of %d node(s) took %.2f s; %d may train",
        server_round,
        len(queries),
        time.perf_counter() - started,
        len(admitted),
    )
    return admitted, len(queries) - len(replies)
