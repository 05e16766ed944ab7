"""Strategy registry and the server's checks on what clients send back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.server.superlink.linkstate.utils import (
    create_message_error_unavailable_res_message,
)
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from fedmodel.errors import FedmodelError
from fedmodel.federation.messages import reply_problem
from fedmodel.federation.strategy import BudgetAwareStrategy, build_strategy
from tests.conftest import group_settings
from tests.fake_grid import FakeGrid

SHAPES = {"classifier.weight": (3, 4), "classifier.bias": (3,)}


def _update(**arrays: np.ndarray) -> RecordDict:
    weights = arrays or {
        name: np.ones(shape, dtype=np.float32) for name, shape in SHAPES.items()
    }
    return RecordDict(
        {
            "arrays": ArrayRecord(
                {k.replace("__", "."): torch.from_numpy(v) for k, v in weights.items()}
            ),
            "metrics": MetricRecord(
                {"num-examples": 10, "budget-exhausted": 0, "client-id": 0}
            ),
        }
    )


@pytest.mark.parametrize(
    ("name", "kind"), [("fedavg", FedAvg), ("fedprox", FedProx), ("fedadam", FedAdam)]
)
def test_strategies_are_looked_up_by_name(name: str, kind: type) -> None:
    strategy = build_strategy(group_settings("strategy", name), num_clients=4)
    assert isinstance(strategy, kind)


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(FedmodelError, match="fedavg"):
        build_strategy(group_settings("strategy", name="fedsgd"), num_clients=4)


def test_a_clean_update_passes() -> None:
    assert reply_problem(_update(), SHAPES) is None


def test_text_in_a_reply_is_refused() -> None:
    content = _update()
    content["leak"] = ConfigRecord({"text": "patient has diabetes"})
    assert "config records" in (reply_problem(content, SHAPES) or "")


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        (
            {
                "classifier__weight": np.full((3, 4), np.nan, dtype=np.float32),
                "classifier__bias": np.zeros(3, dtype=np.float32),
            },
            "NaN",
        ),
        (
            {
                "classifier__weight": np.zeros((4, 3), dtype=np.float32),
                "classifier__bias": np.zeros(3, dtype=np.float32),
            },
            "shape",
        ),
        (
            {
                "classifier__weight": np.zeros((3, 4), dtype=np.float32),
                "token_ids": np.zeros(3, dtype=np.float32),
            },
            "do not match",
        ),
    ],
)
def test_malformed_updates_are_refused(
    arrays: dict[str, np.ndarray], fragment: str
) -> None:
    assert fragment in (reply_problem(_update(**arrays), SHAPES) or "")


def test_a_spent_client_sends_no_weights() -> None:
    spent = RecordDict(
        {"metrics": MetricRecord({"budget-exhausted": 1, "client-id": 2})}
    )
    assert reply_problem(spent, SHAPES) is None
    spent["arrays"] = _update()["arrays"]
    assert reply_problem(spent, SHAPES) == "spent client sent weights"


def test_metrics_must_be_finite_numbers() -> None:
    content = _update()
    content["metrics"]["epsilon"] = float("nan")
    assert "epsilon" in (reply_problem(content, SHAPES) or "")
    content = _update()
    content["metrics"]["token-ids"] = [101, 2023, 102]
    assert "list" in (reply_problem(content, SHAPES) or "")


def test_a_node_the_superlink_lost_is_named_by_the_message_it_was_sent() -> None:
    # The SuperLink answers for a node that stopped sending heartbeats, from
    # its own node id: the failure must name the node the message went to.
    grid = FakeGrid(3)
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    arrays = _update()["arrays"]
    messages = strategy.configure_train(1, arrays, ConfigRecord(), grid)
    for i, message in enumerate(messages):  # what a grid does as it sends
        message.metadata.__dict__["_message_id"] = f"message-{i}"
    lost = messages[1]
    reply = create_message_error_unavailable_res_message(lost.metadata, "node")
    assert reply.metadata.src_node_id == SUPERLINK_NODE_ID != lost.metadata.dst_node_id
    assert strategy.aggregate_train(1, [reply]) == (None, None, [])
    (failure,) = strategy.round_failures
    assert failure.node_id == lost.metadata.dst_node_id
    assert "Node Unavailable" in failure.reason and not failure.permanent
