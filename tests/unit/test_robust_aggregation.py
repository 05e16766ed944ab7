"""Faulty or hostile sites: malformed updates are left out, poisoned ones damped.

Real Flower strategies aggregate real reply messages; the reasons for leaving
a reply out are logged, and the round goes on with the others.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Error, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedMedian, FedTrimmedAvg

from fedmodel.errors import FedmodelError
from fedmodel.federation.messages import reply_problem
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.federation.strategy_choice import build_strategy
from tests.conftest import group_settings

SHAPES = {"head.weight": (2, 3), "head.bias": (2,)}


def _reply(node: int, content: RecordDict | None = None, error: str = "") -> Message:
    metadata = Metadata(
        run_id=1,
        message_id=f"reply-{node}",
        src_node_id=node,
        dst_node_id=0,
        reply_to_message_id=f"train-{node}",
        group_id="1",
        created_at=time.time(),
        ttl=3600.0,
        message_type="train",
    )
    if error:
        return Message(error=Error(code=0, reason=error), metadata=metadata)
    return Message(content=content, metadata=metadata)


def _update(value: float, *, client: int, examples: float = 100.0) -> RecordDict:
    arrays = {
        name: torch.full(shape, value, dtype=torch.float32)
        for name, shape in SHAPES.items()
    }
    metrics = {"num-examples": examples, "client-id": client, "budget-exhausted": 0}
    return RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord(metrics)})


def _aggregate(name: str, replies: list[Message], **settings: object) -> np.ndarray:
    inner = build_strategy(group_settings("strategy", name, **settings), num_clients=5)
    strategy = BudgetAwareStrategy(inner, expected_shapes=SHAPES)
    arrays, _, accepted = strategy.aggregate_train(1, replies)
    assert arrays is not None
    return np.asarray(arrays.to_torch_state_dict()["head.weight"])


@pytest.mark.parametrize(
    ("method", "kind"), [("median", FedMedian), ("trimmed_mean", FedTrimmedAvg)]
)
def test_robust_strategies_are_looked_up_by_name(method: str, kind: type) -> None:
    settings = group_settings("strategy", "robust", robust_method=method)
    assert isinstance(build_strategy(settings, num_clients=4), kind)


def test_bad_robust_settings_are_named() -> None:
    with pytest.raises(FedmodelError, match="robust_method 'mode'"):
        build_strategy(
            group_settings("strategy", "robust", robust_method="mode"), num_clients=4
        )
    bad_beta = group_settings(
        "strategy", "robust", robust_method="trimmed_mean", trim_beta=0.5
    )
    with pytest.raises(FedmodelError, match="trim_beta must be in"):
        build_strategy(bad_beta, num_clients=4)


def test_a_poisoned_site_drags_fedavg_but_not_the_robust_aggregators() -> None:
    def replies() -> list[Message]:
        # Fresh messages for each strategy: a reply aggregated once cannot be
        # aggregated again (its arrays no longer match the model here).
        honest = [_reply(n, _update(1.0 + 0.01 * n, client=n)) for n in range(4)]
        return [*honest, _reply(9, _update(1000.0, client=9))]

    assert _aggregate("fedavg", replies()).mean() > 100
    assert _aggregate("robust", replies()).mean() == pytest.approx(1.02, abs=0.02)
    trimmed = _aggregate(
        "robust", replies(), robust_method="trimmed_mean", trim_beta=0.2
    )
    assert trimmed.mean() == pytest.approx(1.015, abs=0.02)


def test_malformed_replies_are_left_out_with_a_reason_and_the_round_goes_on() -> None:
    nan = _update(1.0, client=1)
    nan["arrays"]["head.bias"] = ArrayRecord({"x": torch.tensor([np.nan, 0.0])})["x"]
    wrong_shape = _update(1.0, client=2)
    wrong_shape["arrays"]["head.weight"] = ArrayRecord({"x": torch.zeros(3, 2)})["x"]
    wrong_keys = RecordDict(
        {
            "arrays": ArrayRecord({"embeddings": torch.zeros(2, 3)}),
            "metrics": _update(1.0, client=3)["metrics"],
        }
    )
    replies = [
        _reply(1, nan),
        _reply(2, wrong_shape),
        _reply(3, wrong_keys),
        _reply(4, error="node went offline"),
        _reply(5, _update(2.0, client=5)),
    ]
    inner = build_strategy(group_settings("strategy", "fedavg"), num_clients=5)
    strategy = BudgetAwareStrategy(inner, expected_shapes=SHAPES)
    arrays, _, accepted = strategy.aggregate_train(1, replies)
    assert arrays is not None
    assert np.allclose(arrays.to_torch_state_dict()["head.weight"], 2.0)
    # Each failure is kept with its client (or node) and one-line reason; the
    # round's FailureWatch callback names each on the console once.
    named = [f"{f.who}: {f.reason}" for f in strategy.round_failures]
    assert (
        "client 1: its update was rejected: weight 'head.bias' holds NaN or inf"
        in named
    )
    assert any(
        line.startswith(
            "client 2: its update was rejected: weight 'head.weight' has shape (3, 2)"
        )
        for line in named
    )
    assert any(
        "client 3: its update was rejected: weights do not match" in line
        for line in named
    )
    assert "node 4: node went offline" in named
    # Rejected updates and crashes stop the node being selected again; a node
    # that went offline (Flower's own error) may come back.
    assert strategy.failed_nodes == {1, 2, 3}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"value": np.inf}, "NaN or inf"),
        ({"examples": 0.0}, "'num-examples' must be a whole count from 1"),
        ({"examples": -5.0}, "'num-examples' is negative"),
        ({"dtype": torch.int64}, "dtype int64"),
    ],
)
def test_more_malformed_updates(change: dict[str, object], fragment: str) -> None:
    content = _update(float(change.get("value", 1.0)), client=0)  # type: ignore[arg-type]
    if "examples" in change:
        content["metrics"]["num-examples"] = change["examples"]  # type: ignore[assignment]
    if "dtype" in change:
        content["arrays"] = ArrayRecord(
            {
                name: torch.ones(shape, dtype=torch.int64)
                for name, shape in SHAPES.items()
            }
        )
    assert fragment in (reply_problem(content, SHAPES) or "")
