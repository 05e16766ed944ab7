"""Which clients a round trains under strategy.fraction_train < 1: by client id, seeded.

The whole-run tests use the real ServerApp and ClientApp over a fake Grid.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Message, MessageType

from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.federation.messages import CLIENT_ID_KEY, METRICS_KEY
from fedmodel.federation.server_app import run_federation
from fedmodel.federation.strategy_choice import ClientChoice, client_choice
from fedmodel.run.metrics import read_rounds
from tests.conftest import FEW_LATENCY_CALLS, logging_restored
from tests.fake_grid import FIRST_NODE, FakeGrid, Killed, killed_at_round

HALF_OF_FOUR = [
    "model=tiny",
    "task.max_train_examples=120",
    "task.max_test_examples=40",
    "num_clients=4",
    "num_rounds=3",
    "partition=iid",
    "finetune.batch_size=32",
    "finetune.local_epochs=1",
    "warm_start.enabled=false",
    "distill=off",
    "strategy.fraction_train=0.5",
    "strategy.min_train_clients=1",
    *FEW_LATENCY_CALLS,
]
# What differs between two runs of one seed: the time things took.
TIMINGS = ("seconds", "client_compute_seconds")


def _settings(run_dir: Path, *overrides: str) -> RunSettings:
    raw = compose_config([*HALF_OF_FOUR, *overrides])
    return settings_from_dict({**raw, "run_dir": str(run_dir)})


def _run(run_dir: Path, *, first_node: int, python_seed: int) -> list[Any]:
    """The clients each round trained, and the run's metrics less its timings.

    Flower draws node ids anew for each simulation (`first_node` here), and
    its strategies sample them with Python's global generator.
    """
    trained: dict[int, list[int]] = {}

    def note(client: int, message: Message) -> None:
        # Read as it is sent: a round's config is changed for the next.
        server_round = int(message.content["config"]["server-round"])
        trained.setdefault(server_round, []).append(client)

    random.seed(python_seed)
    grid = FakeGrid(4, first_node=first_node, before_train=note)
    with logging_restored():
        run_federation(grid, _settings(run_dir, "privacy=off"))
    metrics = [
        {k: v for k, v in row.items() if k not in TIMINGS}
        for row in read_rounds(run_dir)
    ]
    return [{r: sorted(c) for r, c in trained.items()}, metrics]


def test_runs_of_one_seed_train_the_same_clients_and_end_alike(tmp_path: Path) -> None:
    # Before, Flower's random.sample over node ids chose: other clients
    # trained in each run, and the metrics differed.
    trained, metrics = _run(tmp_path / "a", first_node=1001, python_seed=1)
    assert [len(clients) for clients in trained.values()] == [2, 2, 2]
    assert len({tuple(clients) for clients in trained.values()}) > 1
    assert _run(tmp_path / "b", first_node=5001, python_seed=2) == [trained, metrics]


def test_the_choice_is_the_seeds_and_rounds_over_client_ids() -> None:
    choice = ClientChoice(seed=42, fraction=0.5, minimum=1)
    first = choice.chosen([3, 1, 0, 2], server_round=1)
    assert first == choice.chosen([0, 1, 2, 3], server_round=1)  # not their order
    assert len(first) == 2
    rounds = [choice.chosen(range(4), server_round=r) for r in range(1, 9)]
    assert any(chosen != first for chosen in rounds)
    other_seed = ClientChoice(seed=7, fraction=0.5, minimum=1)
    assert any(
        other_seed.chosen(range(4), server_round=r) != chosen
        for r, chosen in enumerate(rounds, start=1)
    )
    at_least = ClientChoice(seed=42, fraction=0.1, minimum=3)
    assert len(at_least.chosen(range(10), server_round=1)) == 3


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["strategy.fraction_train=1.0"], "every client trains"),
        (["privacy=central"], "its Poisson draw must stay secret"),
    ],
)
def test_no_seeded_choice_where_every_client_trains_or_the_draw_is_secret(
    tmp_path: Path, overrides: list[str], reason: str
) -> None:
    assert client_choice(_settings(tmp_path, *overrides)) is None, reason


def test_a_round_chooses_min_replies_clients_while_that_many_have_budget(
    tmp_path: Path,
) -> None:
    # 10 clients, fraction_train=0.5, min_replies=3: round 1 chose 5, but once
    # 6 had spent their budgets a round chose 2 of the 4 left and kept their
    # two updates under a minimum of 3.
    settings = _settings(
        tmp_path,
        "num_clients=10",
        "strategy.min_train_clients=2",
        "federation.min_replies=3",
    )
    choice = client_choice(settings)
    assert choice is not None
    assert len(choice.chosen(range(10), server_round=1)) == 5
    assert len(choice.chosen(range(4), server_round=2)) == 3
    assert len(choice.chosen(range(2), server_round=3)) == 2


def test_a_resumes_chosen_node_is_asked_its_ledger_once_a_round(
    tmp_path: Path,
) -> None:
    # A resumed server asks every node's ledger and client id before it draws
    # round 2's clients. Before, it asked each chosen node again before its
    # train message: 6 queries, not 4, in round 2.
    run_dir = tmp_path / "run"
    with logging_restored(), pytest.raises(Killed):
        run_federation(FakeGrid(4, before_train=killed_at_round(2)), _settings(run_dir))
    trained: dict[int, set[int]] = {}

    def note(client: int, message: Message) -> None:
        server_round = int(message.content["config"]["server-round"])
        trained.setdefault(server_round, set()).add(client)

    grid = FakeGrid(4, first_node=5001, before_train=note)
    with logging_restored():
        summary = run_federation(grid, _settings(run_dir, "resume=true"))
    assert (summary["status"], summary["rounds_completed"]) == ("ok", 3)
    asked: dict[int, list[int]] = {}
    for message in grid.sent:
        if message.metadata.message_type == MessageType.QUERY:
            client = message.metadata.dst_node_id - 5001
            asked.setdefault(int(message.metadata.group_id), []).append(client)
    assert sorted(asked[2]) == [0, 1, 2, 3]
    assert [len(trained[r]) for r in (2, 3)] == [2, 2]
    # One first drawn in round 3 is asked again: it reported no figures in
    # this process to be sent back, and its ledger may have changed since.
    assert sorted(asked.get(3, [])) == sorted(trained[3] - trained[2])


class ChoiceQueryGrid(FakeGrid):
    """Partitions `silent` never answer a ledger query; `foreign`'s answers name 99.

    An id no client of the run has: the server refuses the answer.
    """

    def __init__(self, *, silent: set[int], foreign: set[int]) -> None:
        super().__init__(4)
        self.silent, self.foreign = silent, foreign

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Deliver the messages but silent nodes' queries; change foreign answers."""
        queried = []
        for message in messages:
            query = message.metadata.message_type == MessageType.QUERY
            partition = message.metadata.dst_node_id - self.first_node
            if not (query and partition in self.silent):
                queried.append((query and partition in self.foreign, message))
        replies = list(super().send_and_receive([m for _, m in queried]))
        for (foreign, _), reply in zip(queried, replies, strict=True):
            if foreign:
                reply.content.metric_records[METRICS_KEY][CLIENT_ID_KEY] = 99
        return replies


@pytest.mark.parametrize(
    ("silent", "foreign", "said", "failed"),
    [
        (
            {3},
            set(),
            "1 node did not answer the ledger query within federation.round_timeout",
            0,
        ),
        (set(), {3}, "1 node failed the ledger query", 1),
    ],
    ids=["silent", "refused"],
)
def test_a_node_the_choices_ledger_query_left_out_is_said_apart_from_the_selected(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    silent: set[int],
    foreign: set[int],
    said: str,
    failed: int,
) -> None:
    # Node 4 was asked its ledger before round 1's draw and did not answer (or
    # was refused): it was not selected, yet the round said "1 of 1 selected
    # clients did not answer" and "1 of 1 client's update accepted, 1 did not
    # answer" (or "1 failed"), though the one selected client was accepted.
    grid = ChoiceQueryGrid(silent=silent, foreign=foreign)
    overrides = ("privacy=off", "num_rounds=1", "federation.allow_failed_clients=true")
    with logging_restored():
        run_federation(grid, _settings(tmp_path, *overrides))
    console = capsys.readouterr().err
    assert (
        f"teacher round 1: {said} while this round's clients were chosen, so it "
        "was not selected"
    ) in console
    assert "selected clients did not answer" not in console
    assert "round 1/1: test accuracy" in console
    assert "| 1/1 clients |" in console
    trained = [m for m in grid.sent if m.metadata.message_type == MessageType.TRAIN]
    assert [m.metadata.dst_node_id != FIRST_NODE + 3 for m in trained] == [True]
    row = read_rounds(tmp_path)[0]
    # clients_failed counts the refused answer (summary.json's failed_clients
    # holds it), clients_selected does not.
    assert [row[k] for k in ("clients_selected", "clients_aggregated")] == [1, 1]
    assert (row["clients_failed"], row["model_changed"]) == (failed, True)


def test_a_round_the_choices_ledger_query_left_short_still_stops_and_says_why(
    tmp_path: Path,
) -> None:
    # Three of four nodes did not answer the ledger query: one client was left
    # to draw, one update fell short of federation.min_replies=2. The run
    # stopped, as it still does, but said "0 failed and 3 did not answer" of
    # the one selected client, which answered.
    grid = ChoiceQueryGrid(silent={1, 2, 3}, foreign=set())
    overrides = ("privacy=off", "num_rounds=1", "federation.min_replies=2")
    with logging_restored(), pytest.raises(FedmodelError) as stopped:
        run_federation(grid, _settings(tmp_path, *overrides))
    assert (
        "round 1: 1 accepted update, fewer than federation.min_replies=2; 0 failed "
        "and 0 did not answer, and 3 nodes did not answer the ledger query within "
        "federation.round_timeout while this round's clients were chosen. The "
        "model does not hold round 1: continue with resume=true to run it again"
    ) in str(stopped.value)
    row = read_rounds(tmp_path)[0]
    assert [row[k] for k in ("clients_selected", "clients_aggregated")] == [1, 1]
    assert row["model_changed"] is False
