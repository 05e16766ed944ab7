"""A Flower `Grid` that delivers each message to the real ClientApp in-process.

Flower's `Grid` is an abstract class; this one holds a Context per node (with
the `partition-id` simulation would give it) and calls `client_app.app` on each
message (train, and the ledger query before it), so the server's round loop
runs against real clients in seconds, without Ray. `before_train` lets a test
change a client's state (its ledger, its settings) before its train message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fedmodel.client.site import SIMULATED_CLIENT
from fedmodel.federation import client_app
from tests.conftest import FEW_LATENCY_CALLS

# One round of two clients on the tiny model and a few records: a whole run
# over the fake Grid in seconds.
FAKE_GRID_RUN = [
    "model=tiny",
    "task.max_train_examples=120",
    "task.max_test_examples=40",
    "num_clients=2",
    "num_rounds=1",
    "partition=iid",
    "finetune.batch_size=32",
    "finetune.local_epochs=1",
    *FEW_LATENCY_CALLS,
]

# Node ids the way a SuperLink hands them out: large and not the partition id.
FIRST_NODE = 1001


def flwr_run_context(overrides: list[str], run_dir: Path) -> Context:
    """The ServerApp's Context as `flwr run` gives it: only the app's two keys."""
    return Context(
        run_id=1,
        node_id=0,
        node_config={},
        state=RecordDict(),
        run_config={"overrides": " ".join(overrides), "run-dir": str(run_dir)},
    )


class Killed(BaseException):
    """Stands in for kill -9: nothing after it runs."""


def killed_at_round(number: int) -> Callable[[int, Message], None]:
    """A `before_train` that kills the run as round `number`'s training starts."""

    def kill(client: int, message: Message) -> None:
        if message.content["config"]["server-round"] == number:
            raise Killed

    return kill


class FakeGrid(Grid):
    """Nodes `first_node + i` run partition i of the simulated task.

    A test of a server that restarted passes another `first_node`: Flower
    draws node ids anew for each simulation and SuperNode connection. With
    `nan_updates` every update comes back NaN, what a learning rate of NaN
    makes of it, which the server rejects.
    """

    def __init__(
        self,
        num_nodes: int,
        *,
        before_train: Callable[[int, Message], None] | None = None,
        first_node: int = FIRST_NODE,
        nan_updates: bool = False,
    ) -> None:
        self.first_node = first_node
        self.contexts = {
            first_node + i: Context(
                run_id=1,
                node_id=first_node + i,
                node_config={SIMULATED_CLIENT: i},
                state=RecordDict(),
                run_config={},
            )
            for i in range(num_nodes)
        }
        # Flower stamps every new message with the process's task identity,
        # which a SuperLink or the simulation engine would have set.
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
        self.before_train = before_train
        self.nan_updates = nan_updates
        self.sent: list[Message] = []
        self._run: Run | None = None

    def set_run(self, run: Run) -> None:
        """Keep the run (unused)."""
        self._run = run

    @property
    def run(self) -> Run:
        """The run set with `set_run`."""
        assert self._run is not None
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """A message to one node."""
        return Message(
            content=content,
            dst_node_id=dst_node_id,
            message_type=message_type,
            group_id=group_id,
            ttl=ttl,
        )

    def get_node_ids(self) -> Iterable[int]:
        """Every node of the fake federation."""
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Not used by the round loop."""
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Not used by the round loop."""
        raise NotImplementedError

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Deliver each message to its node's ClientApp and collect the replies."""
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            train = message.metadata.message_type == MessageType.TRAIN
            if train and self.before_train is not None:
                self.before_train(node - self.first_node, message)
            self.sent.append(message)
            reply = client_app.app(message, self.contexts[node])
            if train and self.nan_updates:
                weights = reply.content["arrays"].to_torch_state_dict()
                reply.content["arrays"] = ArrayRecord(
                    {k: torch.full_like(w, float("nan")) for k, w in weights.items()}
                )
            replies.append(reply)
        return replies
