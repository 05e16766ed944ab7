"""A round's train replies as the strategy reads them, apart from its state.

The node each reply is about (the SuperLink answers for a node it lost), the
replies in a fixed order, and copies of them that Flower's strategies can
aggregate together.
"""

from __future__ import annotations

import copy

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from fedmodel.federation.messages import ARRAYS_KEY, CLIENT_ID_KEY, METRICS_KEY


def node_of(reply: Message, sent: list[Message]) -> int:
    """The node a reply is about: the one its message in `sent` went to.

    A reply's sender is the node, except where the SuperLink answers for
    a node it lost (Flower's "Node Unavailable"): that reply comes from
    the SuperLink's own id and names only the message it answers.
    """
    answered = reply.metadata.reply_to_message_id
    for message in sent:
        if answered and message.metadata.message_id == answered:
            return int(message.metadata.dst_node_id)
    return int(reply.metadata.src_node_id)


def by_client(replies: list[Message]) -> list[Message]:
    """`replies` in order of the client id each names, not of their arrival.

    Float sums depend on their order: summed as they arrived, two runs of one
    seed aggregated different weights, from the 7th digit on.
    """
    return sorted(replies, key=_client_id)


def _client_id(reply: Message) -> int:
    return int(reply.content.metric_records[METRICS_KEY][CLIENT_ID_KEY])  # type: ignore[arg-type]


def with_shared_metrics(replies: list[Message]) -> list[Message]:
    """Copies of `replies` whose metrics hold only the keys every one holds.

    Flower's strategies raise on replies whose metric keys differ, which
    ended the run for one client's number more or less. The robust
    strategies empty the copies' own ArrayRecords as they aggregate.
    """
    metrics = [reply.content.metric_records[METRICS_KEY] for reply in replies]
    shared = set.intersection(*(set(m) for m in metrics))
    copies = []
    for reply, numbers in zip(replies, metrics, strict=True):
        copied = copy.copy(reply)  # the reply's metadata, content of its own
        copied.content = RecordDict(
            {
                ARRAYS_KEY: ArrayRecord(dict(reply.content.array_records[ARRAYS_KEY])),
                METRICS_KEY: MetricRecord({k: numbers[k] for k in shared}),
            }
        )
        copies.append(copied)
    return copies
