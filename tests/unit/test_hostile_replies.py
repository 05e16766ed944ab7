"""Malformed or hostile train replies: refused one by one, never the server's end.

Each reply is built by hand and aggregated by the server's real strategies
(every privacy mode's): the reply is left out with a reason naming it, the
round goes on with the others, and the global model stays finite.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedmodel.data.tasks import load_task
from fedmodel.federation.central_dp import ClientLevelDPStrategy
from fedmodel.federation.messages import reply_problem
from fedmodel.federation.rounds import _aggregate
from fedmodel.federation.server_rounds import prepare_rounds
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.federation.strategy_choice import build_strategy
from fedmodel.training.global_model import GlobalModel
from tests.conftest import group_settings, reply_metadata, small_settings
from tests.fake_grid import FIRST_NODE, FakeGrid

SHAPES = {"a": (2, 3), "b": (3,)}
START = {name: np.zeros(shape, dtype=np.float32) for name, shape in SHAPES.items()}


def _metrics(client: int, **changed: float | None) -> dict[str, float]:
    """A record-level DP reply's numbers; None leaves a key out."""
    metrics: dict[str, float | None] = {
        "num-examples": 10.0,
        "client-id": client,
        "budget-exhausted": 0,
        "epsilon": 1.0,
        "delta": 1e-5,
        "steps": 2.0,
        "round-steps": 2.0,
        **changed,
    }
    return {key: value for key, value in metrics.items() if value is not None}


def _reply(
    client: int, arrays: dict[str, Array] | None = None, **changed: float | None
) -> Message:
    arrays = arrays or {
        name: Array(np.full(shape, 0.5, dtype=np.float32))
        for name, shape in SHAPES.items()
    }
    content = RecordDict(
        {
            "arrays": ArrayRecord(arrays),
            "metrics": MetricRecord(_metrics(client, **changed)),
        }
    )
    return Message(content=content, metadata=reply_metadata(FIRST_NODE + client))


def _strategy(name: str, tmp_path: Path, **kwargs: bool | range) -> BudgetAwareStrategy:
    """The server's strategy for `name`, its round 1 configured on 3 nodes."""
    if name == "central":
        settings = dataclasses.replace(
            small_settings("privacy=central", "num_clients=3"), run_dir=str(tmp_path)
        )
        base = BudgetAwareStrategy(
            build_strategy(settings.strategy, num_clients=3), expected_shapes=SHAPES
        )
        strategy: BudgetAwareStrategy = ClientLevelDPStrategy(base, settings=settings)
    else:
        option = {
            "median": ("robust", {}),
            "trimmed_mean": ("robust", {"robust_method": "trimmed_mean"}),
        }
        group, values = option.get(name, (name, {}))
        inner = build_strategy(
            group_settings("strategy", group, **values), num_clients=3
        )
        strategy = BudgetAwareStrategy(inner, expected_shapes=SHAPES, **kwargs)
    start = ArrayRecord({name: Array(array) for name, array in START.items()})
    strategy.configure_train(1, start, ConfigRecord(), FakeGrid(3))
    return strategy


def _aggregated(
    strategy: BudgetAwareStrategy, replies: list[Message]
) -> dict[str, np.ndarray]:
    arrays, _, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    return {name: array.numpy() for name, array in arrays.items()}


def test_central_dp_pairs_a_reordered_reply_by_name(tmp_path: Path) -> None:
    # It paired a reply's arrays with the model's by position: a reply listing
    # them in another order crashed the server (shapes that do not broadcast).
    strategy = _strategy("central", tmp_path)
    reordered = {
        "b": Array(np.full(3, 0.5, dtype=np.float32)),
        "a": Array(np.full((2, 3), 0.5, dtype=np.float32)),
    }
    aggregated = _aggregated(strategy, [_reply(0, reordered), _reply(1), _reply(2)])
    assert [a.shape for a in aggregated.values()] == [(2, 3), (3,)]
    assert not strategy.round_failures


def _declared_float32(array: np.ndarray, shape: tuple[int, ...]) -> Array:
    """An Array that says float32 of `shape` and holds `array`'s bytes."""
    held = Array(array)
    return Array(dtype="float32", shape=shape, stype=held.stype, data=held.data)


@pytest.mark.parametrize(
    ("weight", "fragment"),
    [
        # FedAvg's aggregate takes the first reply's dtype: float16 rounded the
        # global model, a float64 value past float32's range loaded as inf.
        (Array(np.full((2, 3), 0.5, dtype=np.float16)), "dtype float16, not float32"),
        (Array(np.full((2, 3), 1e300)), "dtype float64, not float32"),
        # The record's declared shape and dtype are not what its bytes hold.
        (_declared_float32(np.zeros((3, 2), np.float32), (2, 3)), "shape (3, 2)"),
        (_declared_float32(np.zeros(6), (2, 3)), "dtype float64"),
        # An unknown dtype or serialisation was a TypeError out of the server.
        (
            Array(dtype="garbage", shape=(2, 3), stype="numpy.ndarray", data=b"x"),
            "cannot be read",
        ),
        (
            Array(dtype="float32", shape=(2, 3), stype="torch.Tensor", data=b"x"),
            "cannot be read",
        ),
    ],
)
def test_weights_are_checked_as_their_bytes_hold_them(
    weight: Array, fragment: str
) -> None:
    arrays = {"a": weight, "b": Array(np.zeros(3, dtype=np.float32))}
    content = _reply(0, arrays).content
    assert fragment in (reply_problem(content, SHAPES) or "")


def test_a_float64_reply_past_float32_cannot_make_the_model_inf(tmp_path: Path) -> None:
    huge = {"a": Array(np.full((2, 3), 1e300)), "b": Array(np.zeros(3))}
    strategy = _strategy("fedavg", tmp_path)
    aggregated = _aggregated(strategy, [_reply(0, huge), _reply(1), _reply(2)])
    assert np.allclose(aggregated["a"], 0.5) and aggregated["a"].dtype == np.float32
    (failure,) = strategy.round_failures
    assert failure.client_id == 0 and "dtype float64" in failure.reason


STRATEGIES = ["fedavg", "fedprox", "fedadam", "median", "trimmed_mean", "central"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_reply_with_other_metric_keys_leaves_the_round_to_the_others(
    name: str, tmp_path: Path
) -> None:
    # Flower's strategies raised InconsistentMessageReplies on replies whose
    # metric keys differ: one client's extra number ended the whole run.
    replies = [_reply(0, extra=1.0), _reply(1), _reply(2, epsilon=None)]
    arrays, _, accepted = _strategy(name, tmp_path).aggregate_train(1, replies)
    assert arrays is not None and len(accepted) == 3
    assert all(np.isfinite(array.numpy()).all() for array in arrays.values())
    # The robust strategies empty the replies they aggregate: the round's
    # bytes_received counted 0 for them.
    assert all(len(reply.content["arrays"]) == 2 for reply in accepted)


@pytest.mark.parametrize(
    ("changed", "fragment"),
    [
        ({"epsilon": -5.0}, "metric 'epsilon' is negative: -5.0"),
        ({"steps": -1.0}, "metric 'steps' is negative"),
        ({"client-id": 0.5}, "metric 'client-id' is not a whole number: 0.5"),
        ({"budget-exhausted": 0.5}, "metric 'budget-exhausted' is not 0 or 1"),
    ],
)
def test_figures_no_ledger_holds_are_refused_unrecorded(
    changed: dict[str, float], fragment: str, tmp_path: Path
) -> None:
    # A negative epsilon was taken as the client's spend (and the run's
    # stated epsilon could be the largest of such figures); 0.5 budget-spent
    # stopped the node as spent.
    strategy = _strategy("fedavg", tmp_path)
    _aggregated(strategy, [_reply(0, **changed), _reply(1)])
    (failure,) = strategy.round_failures
    assert failure.reason == fragment or failure.reason.startswith(fragment)
    assert failure.node_id == FIRST_NODE and 0 not in strategy.client_figures
    assert not strategy.spent_nodes


@pytest.mark.parametrize("missing", ["epsilon", "steps"])
def test_under_record_level_dp_a_reply_without_its_figures_keeps_the_recorded_ones(
    missing: str, tmp_path: Path
) -> None:
    # A site's reply without epsilon replaced the figures recorded for it:
    # in a deployment the run's stated epsilon then left out its spend.
    strategy = _strategy("fedavg", tmp_path, privacy_figures=True)
    strategy.client_figures[0] = {"epsilon": 3.0, "steps": 4.0}
    _aggregated(strategy, [_reply(0, **{missing: None}), _reply(1)])
    (failure,) = strategy.round_failures
    assert failure.reason == f"metric {missing!r} is missing"
    assert max(strategy.epsilons()) == 3.0


@pytest.mark.parametrize("examples", [1e308, 2.5])
def test_a_claimed_record_count_must_be_a_whole_count_a_float_holds(
    examples: float, tmp_path: Path
) -> None:
    # Two claims of 1e308 records summed to inf in FedAvg's weights, every
    # weight came to 0 and the global model to zeros.
    strategy = _strategy("fedavg", tmp_path)
    replies = [
        _reply(0, **{"num-examples": examples}),
        _reply(1, **{"num-examples": examples}),
        _reply(2),
    ]
    aggregated = _aggregated(strategy, replies)
    assert np.allclose(aggregated["a"], 0.5)
    assert len(strategy.round_failures) == 2


@pytest.mark.parametrize("name", ["median", "trimmed_mean"])
def test_an_aggregate_past_float32_leaves_the_model_as_it_was(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Finite float32 replies at its largest value: the median of two (their
    # mean) and the trimmed mean summed past it, and the model became inf.
    largest = np.finfo(np.float32).max
    huge = {
        n: Array(np.full(shape, largest, dtype=np.float32))
        for n, shape in SHAPES.items()
    }
    strategy = _strategy(name, tmp_path)
    arrays, _, accepted = _aggregate(strategy, 1, [_reply(0, huge), _reply(1, huge)])
    assert arrays is None and len(accepted) == 2
    assert "round 1: the aggregate of 2 updates is not finite" in caplog.text


@pytest.mark.parametrize(
    "name", ["fedavg", "fedprox", "fedadam", "median", "trimmed_mean", "central"]
)
def test_every_strategy_s_aggregate_is_float32(name: str, tmp_path: Path) -> None:
    # FedAdam's step is numpy float64 scalars times the float32 arrays: its
    # aggregate came back float64, and the next round sent it as it was, twice
    # the bytes of the model the clients train.
    arrays, _, _ = _aggregate(_strategy(name, tmp_path), 1, [_reply(0), _reply(1)])
    assert arrays is not None
    assert {array.numpy().dtype for array in arrays.values()} == {np.dtype("float32")}


@pytest.mark.parametrize("named", [3, 1000])
def test_a_reply_naming_no_client_of_the_run_is_refused_naming_node_and_id(
    named: int, tmp_path: Path
) -> None:
    # A node could name a new client id each round, past num_clients: each
    # became a client in the server's figures, and spent ones counted toward
    # the budget stop's num_clients.
    # A simulation's ids: the server numbered its clients.
    strategy = _strategy("fedavg", tmp_path, client_ids=range(3))
    spent = _reply(named, **{"budget-exhausted": 1})
    arrays, _, accepted = strategy.aggregate_train(1, [spent, _reply(1), _reply(2)])
    assert arrays is not None and len(accepted) == 2
    (failure,) = strategy.round_failures
    assert failure.who == f"node {FIRST_NODE + named}"
    assert failure.reason == (
        f"it names client {named}, but this run's client ids are 0 to 2 (num_clients=3)"
    )
    assert set(strategy.client_figures) == {1, 2} and not strategy.spent_nodes


def test_a_deployment_s_sites_name_their_own_ids(tmp_path: Path) -> None:
    # `--site-id` is any whole number: a site past num_clients trains (the
    # round warns), as before.
    strategy = _strategy("fedavg", tmp_path)
    arrays, _, accepted = strategy.aggregate_train(1, [_reply(7), _reply(1)])
    assert arrays is not None and len(accepted) == 2
    assert set(strategy.client_figures) == {1, 7} and not strategy.round_failures


@pytest.mark.parametrize("privacy", ["dpsgd", "central"])
def test_a_simulated_server_holds_replies_to_the_ids_it_numbered(
    privacy: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        small_settings(f"privacy={privacy}", "num_clients=2"), run_dir=str(tmp_path)
    )
    task = load_task(settings.task, seed=0)
    model = GlobalModel(settings, label_names=task.label_names, test=task.test)
    shared = prepare_rounds(
        FakeGrid(2), settings, model=model, run_dir=tmp_path, resumed=None
    )
    assert shared.strategy.client_ids == range(2)
    # Federated distillation's student rounds too.
    other = shared.strategy.for_other_weights(shared.strategy.inner, expected_shapes={})
    assert other.client_ids == range(2)
