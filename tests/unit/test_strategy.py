"""Strategy registry and the server's checks on what clients send back.

The ledger query's tests ask the real ClientApp, in-process (`FakeGrid`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.server.superlink.linkstate.utils import (
    create_message_error_unavailable_res_message,
)
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from fedmodel import __version__
from fedmodel.errors import FedmodelError
from fedmodel.federation.ledger_query import check_ledgers
from fedmodel.federation.messages import RECORDED_KEY, reply_problem
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.federation.strategy_choice import build_strategy
from fedmodel.privacy.ledger_reset import archive_ledger
from fedmodel.run.layout import simulated_client_dir
from tests.conftest import (
    charge_client_ledger,
    client_ledger,
    group_settings,
    reply_metadata,
)
from tests.fake_grid import FIRST_NODE, FakeGrid

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


def test_a_lost_node_is_named_by_the_site_it_answered_for() -> None:
    # Flower's "Node Unavailable" names no client: the server logged "round 2:
    # node 10062287433869788966 failed", a number the operator could not match
    # to a site, though the node had answered for site 5 in round 1.
    grid = FakeGrid(2)
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    arrays = _update()["arrays"]
    strategy.configure_train(1, arrays, ConfigRecord(), grid)
    answered = _update()
    answered["metrics"] = MetricRecord({"num-examples": 10, "client-id": 5})
    strategy.aggregate_train(
        1, [Message(content=answered, metadata=reply_metadata(FIRST_NODE))]
    )
    messages = strategy.configure_train(2, arrays, ConfigRecord(), grid)
    for i, message in enumerate(messages):  # what a grid does as it sends
        message.metadata.__dict__["_message_id"] = f"message-{i}"
    lost = next(m for m in messages if m.metadata.dst_node_id == FIRST_NODE)
    reply = create_message_error_unavailable_res_message(lost.metadata, "node")
    strategy.aggregate_train(2, [reply])
    (failure,) = strategy.round_failures
    assert (failure.who, failure.node_id) == ("client 5", FIRST_NODE)
    assert "Node Unavailable" in failure.reason and not failure.permanent


class _SiteJoiningGrid(FakeGrid):
    """Two of three nodes connected until the grid has been asked `joins` times."""

    def __init__(self, joins: int) -> None:
        super().__init__(3)
        self.asked = 0
        self.joins = joins

    def get_node_ids(self) -> list[int]:
        self.asked += 1
        nodes = list(self.contexts)
        return nodes if self.asked > self.joins else nodes[:2]


def test_a_round_waiting_for_a_supernode_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Flower waits until strategy.min_train_clients nodes are connected, with
    # no time limit, saying so only in the run's log: before, the console of
    # a deployment whose third site was not up stopped after its last line.
    inner = build_strategy(
        group_settings("strategy", min_train_clients=3), num_clients=3
    )
    strategy = BudgetAwareStrategy(inner, expected_shapes=SHAPES)
    arrays = _update()["arrays"]
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        messages = strategy.configure_train(
            1, arrays, ConfigRecord(), _SiteJoiningGrid(3)
        )
    assert len(messages) == 3
    (said,) = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert said.startswith(
        "round 1: waiting for SuperNodes to connect: 2 connected, and the round "
        "starts once 3 are (strategy.min_train_clients"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        strategy.configure_train(2, arrays, ConfigRecord(), _SiteJoiningGrid(0))
    assert not [r for r in caplog.records if "waiting" in r.getMessage()]


def _ledger_query_round(
    run_dir: Path,
    recorded: dict[int, dict[str, float]],
    *,
    reporters: dict[int, int] | None = None,
) -> tuple[BudgetAwareStrategy, FakeGrid, list[Message], int]:
    """Round 2's ledger check of the real ClientApps of clients 0 and 1.

    `reporters` (client id: node) are the nodes the server heard from in this
    process; it asks the others what their ledger holds.
    """
    grid = FakeGrid(2)
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    strategy.client_figures.update(recorded)
    strategy.reporters.update(reporters or {})
    messages = strategy.configure_train(2, _update()["arrays"], ConfigRecord(), grid)
    admitted, unanswered = check_ledgers(
        grid,
        strategy,
        messages,
        server_round=2,
        train_config=ConfigRecord(
            {"fedmodel-version": __version__, "run-dir": str(run_dir)}
        ),
        timeout=60,
    )
    return strategy, grid, admitted, unanswered


def test_a_node_whose_ledger_lost_charges_is_sent_no_train_message(
    tmp_path: Path,
) -> None:
    # The server recorded round 1's charge of both clients; client 0's state
    # folder was deleted since, client 1's kept.
    run_dir = tmp_path / "run"
    records = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    charge_client_ledger(run_dir, 1, records)
    held = client_ledger(run_dir, 1)
    figures = {
        "steps": float(held["rounds"][-1]["steps"]),
        "epsilon": held["rounds"][-1]["epsilon"],
        "ledger-resets": 0.0,
    }
    strategy, grid, admitted, unanswered = _ledger_query_round(
        run_dir, {0: dict(figures), 1: dict(figures)}
    )

    assert [m.metadata.dst_node_id for m in admitted] == [FIRST_NODE + 1]
    assert unanswered == 0
    (failure,) = strategy.round_failures
    assert (failure.client_id, failure.node_id) == (0, FIRST_NODE)
    assert failure.permanent and FIRST_NODE in strategy.failed_nodes
    assert failure.reason.startswith(
        "its privacy ledger held 0 steps before this round, fewer than the 2 the "
        "server recorded for it and reports epsilon 0.0000, below the "
    )
    # Only queries went out, and they charged nothing, wrote nothing.
    assert {m.metadata.message_type for m in grid.sent} == {"query"}
    assert not simulated_client_dir(run_dir, 0).exists()
    assert client_ledger(run_dir, 1) == held


def test_a_ledger_reset_by_its_operator_passes_the_ledger_query(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    records = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    for client in (0, 1):
        charge_client_ledger(run_dir, client, records)
    held = client_ledger(run_dir, 0)
    figures = {"steps": 2.0, "epsilon": held["rounds"][-1]["epsilon"]}
    archive_ledger(simulated_client_dir(run_dir, 0))
    strategy, _, admitted, _ = _ledger_query_round(
        run_dir, {0: dict(figures), 1: dict(figures)}
    )
    assert len(admitted) == 2 and not strategy.round_failures


def test_the_ledger_query_line_counts_the_queried_nodes_that_may_train(
    tmp_path: Path,
) -> None:
    # Node FIRST_NODE replied as client 0 in this process and is told its
    # figures; client 1's node is asked, and its deleted ledger is refused.
    run_dir = tmp_path / "run"
    records = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    charge_client_ledger(run_dir, 0, records)
    held = client_ledger(run_dir, 0)["rounds"][-1]
    figures = {"steps": 2.0, "epsilon": held["epsilon"], "ledger-resets": 0.0}
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    query_log = logging.getLogger("fedmodel.federation.ledger_query")
    query_log.addHandler(handler)
    try:
        _, _, admitted, _ = _ledger_query_round(
            run_dir, {0: dict(figures), 1: dict(figures)}, reporters={0: FIRST_NODE}
        )
    finally:
        query_log.removeHandler(handler)
    assert [m.metadata.dst_node_id for m in admitted] == [FIRST_NODE]
    (line,) = [line for line in lines if "ledger query" in line]
    assert line.startswith("round 2: ledger query of 1 node took ")
    assert line.endswith("; 0 of them may train")


def test_recorded_figures_go_back_only_to_the_node_that_reported_them(
    tmp_path: Path,
) -> None:
    # The server recorded both clients' figures, client 1's from a checkpoint:
    # only node FIRST_NODE replied in this process (as client 0).
    run_dir = tmp_path / "run"
    records = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    for client in (0, 1):
        charge_client_ledger(run_dir, client, records)
    held = client_ledger(run_dir, 0)["rounds"][-1]
    figures = {"steps": 2.0, "epsilon": held["epsilon"], "ledger-resets": 0.0}
    strategy, grid, admitted, _ = _ledger_query_round(
        run_dir,
        {0: {**figures, "num-examples": 2.0}, 1: dict(figures)},
        reporters={0: FIRST_NODE},
    )
    assert [(m.metadata.dst_node_id, m.metadata.message_type) for m in grid.sent] == [
        (FIRST_NODE + 1, "query")
    ]
    told, asked = sorted(admitted, key=lambda m: m.metadata.dst_node_id)
    assert dict(told.content[RECORDED_KEY]) == {**figures, "client-id": 0}
    assert RECORDED_KEY not in asked.content and not strategy.round_failures


def _client_update(client: int) -> Message:
    rng = np.random.default_rng(client)
    content = _update(
        **{
            name.replace(".", "__"): rng.normal(size=shape).astype(np.float32)
            for name, shape in SHAPES.items()
        }
    )
    content["metrics"] = MetricRecord(
        {"num-examples": 7 + 6 * client, "client-id": client, "train-loss": 0.1 / 3}
    )
    return Message(content=content, metadata=reply_metadata(FIRST_NODE + client))


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0)])
def test_replies_aggregate_alike_in_whatever_order_they_arrive(
    order: tuple[int, ...],
) -> None:
    # Float sums depend on their order: two runs of one seed, their replies
    # arriving in another order, differed from the 7th digit on.
    def aggregate(clients: tuple[int, ...]) -> tuple[dict[str, bytes], list[int]]:
        strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
        replies = [_client_update(client) for client in clients]
        arrays, _, accepted = strategy.aggregate_train(1, replies)
        assert arrays is not None
        weights = {name: array.numpy().tobytes() for name, array in arrays.items()}
        return weights, [int(r.content["metrics"]["client-id"]) for r in accepted]

    assert aggregate(order) == aggregate((0, 1, 2))
