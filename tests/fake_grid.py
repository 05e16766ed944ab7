"""A Flower `Grid` that delivers each message to the real ClientApp in-process.

Flower's `Grid` is an abstract class; this one holds a Context per node (with
the `partition-id` simulation would give it) and calls `client_app.app` on each
message (train, and the ledger query before it), so the server's round loop
runs against real clients in seconds, without Ray. `before_train` lets a test
change a client's state (its ledger, its settings) before its train message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flwr.app import Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fedmodel.client.site import SIMULATED_CLIENT
from fedmodel.federation import client_app

# Node ids the way a SuperLink hands them out: large and not the partition id.
FIRST_NODE = 1001


class Killed(BaseException):
    """Stands in for kill -9: nothing after it runs."""


class FakeGrid(Grid):
    """Nodes `first_node + i` run partition i of the simulated task.

    A test of a server that restarted passes another `first_node`: Flower
    draws node ids anew for each simulation and SuperNode connection.
    """

    def __init__(
        self,
        num_nodes: int,
        *,
        before_train: Callable[[int, Message], None] | None = None,
        first_node: int = FIRST_NODE,
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
            replies.append(client_app.app(message, self.contexts[node]))
        return replies
