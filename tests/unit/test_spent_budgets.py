"""Which clients have spent their budget is known by client id, not by node id.

Node ids change with every server process and SuperNode connection. The
strategy's tests feed it real reply messages; the resume test runs the real
ServerApp and ClientApps over a fake Grid (`FakeGrid`), as test_rounds.py
does, under other node ids after the restart.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedmodel.errors import FedmodelError
from fedmodel.federation import client_app
from fedmodel.federation.budget_stop import BudgetStop
from fedmodel.federation.round_state import RoundState, round_figures
from fedmodel.federation.server_app import run_federation
from fedmodel.federation.spent_budgets import spent_clients
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.run.metrics import read_rounds
from fedmodel.run.summary import client_rows, guarantee
from tests.conftest import client_ledger_path, logging_restored, small_settings
from tests.fake_grid import FIRST_NODE, FakeGrid, Killed
from tests.unit.test_robust_aggregation import SHAPES
from tests.unit.test_robust_aggregation import _reply as train_reply
from tests.unit.test_rounds import _charged_rounds, _settings

# Four clients over five rounds, on test_rounds.py's tiny run.
FOUR_CLIENTS = ("num_clients=4", "num_rounds=5")


def _reply(
    node: int,
    *,
    client: int,
    spent: bool,
    resets: int = 0,
    steps: int = 0,
    delta: float | None = None,
) -> Message:
    """A train reply from `node` for `client`: spent (no weights) or an update.

    With `steps`, its ledger holds that many after this round's 24; with
    `delta`, its epsilon is stated at that delta.
    """
    metrics = {
        "num-examples": 0.0 if spent else 10.0,
        "client-id": client,
        "budget-exhausted": int(spent),
        "ledger-resets": resets,
    }
    if steps:
        metrics.update({"steps": steps, "round-steps": 24, "epsilon": steps / 48})
    if delta is not None:
        metrics["delta"] = delta
    content = RecordDict({"metrics": MetricRecord(metrics)})
    if not spent:
        content["arrays"] = ArrayRecord(
            {name: torch.zeros(shape) for name, shape in SHAPES.items()}
        )
    return train_reply(node, content)


def _stops(stop: BudgetStop, server_round: int) -> bool:
    state = RoundState(server_round, "teacher", [], 0, [], [], None)
    return stop.after_round(state, {})[0]


def test_a_client_counts_once_whatever_nodes_it_answered_from() -> None:
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    stop = BudgetStop(strategy, num_clients=2, min_replies=1, last_round=5)
    strategy.aggregate_train(1, [_reply(11, client=0, spent=True)])
    assert not _stops(stop, 1)
    # Its SuperNode reconnected (or the server restarted): a new node id.
    strategy.aggregate_train(2, [_reply(21, client=0, spent=True)])
    assert spent_clients(strategy.client_figures) == {0}
    assert not _stops(stop, 2)
    assert strategy.spent_nodes == {11, 21}
    strategy.aggregate_train(3, [_reply(12, client=1, spent=True)])
    assert _stops(stop, 3)


def test_fewer_clients_of_budget_left_than_min_replies_end_the_run() -> None:
    # A round of 1 update under min_replies=2 was kept once client 0 was
    # spent; now the run ends, saying why and how it could go on.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    stop = BudgetStop(strategy, num_clients=3, min_replies=2, last_round=5)
    strategy.aggregate_train(2, [_reply(11, client=0, spent=True)])
    assert not _stops(stop, 2) and stop.ended is None
    strategy.aggregate_train(3, [_reply(12, client=1, spent=True)])
    assert _stops(stop, 3)
    assert stop.ended == (
        "teacher round 3: 0 accepted updates, and clients 0, 1 have spent their "
        "privacy budget: 1 of 3 clients has budget left, fewer than "
        "federation.min_replies=2, so no later round can be kept, and no resume "
        "can make one (a spent budget stays spent); round 3 is not kept. The run "
        "ends with the model of the rounds kept: its result, or continue with "
        "resume=true federation.min_replies=1 to run rounds 4-5 with the client "
        "left"
    )


def test_two_nodes_naming_one_client_in_a_round_are_refused_by_name() -> None:
    # Two sites started with the same --site-id: the second reply of the
    # round is refused for good, naming both nodes; the first one counts.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    replies = [_reply(n, client=c, spent=False) for n, c in ((11, 0), (12, 0), (13, 1))]
    _, _, accepted = strategy.aggregate_train(1, replies)
    assert [r.metadata.src_node_id for r in accepted] == [11, 13]
    (failure,) = strategy.round_failures
    assert (failure.who, failure.permanent) == ("node 12", True)
    assert failure.reason == (
        "it names client 0, as node 11 did in this round: two sites were started "
        "with the same --site-id (node config site-id); give each site its own and "
        "start its SuperNode again"
    )
    assert strategy.failed_nodes == {12} and strategy.reporters == {0: 11, 1: 13}
    # A later round, from a node that came back under a new id, is that client.
    _, _, accepted = strategy.aggregate_train(2, [_reply(21, client=0, spent=False)])
    assert len(accepted) == 1 and strategy.failed_nodes == {12}


def test_a_reply_refused_for_its_client_id_still_counts_in_the_statement(
    tmp_path: Path,
) -> None:
    # Two sites started with the same --site-id both trained in round 1 and
    # sent their updates; the second is refused, yet it was charged and its
    # update reached the server. summary.json's statement kept the first
    # site's epsilon and delta alone (0.5 at 1e-5, where node 12 spent 2.0 at
    # 1e-4), and the run's lines too.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    replies = [
        _reply(11, client=0, spent=False, steps=24, delta=1e-5),
        _reply(12, client=0, spent=False, steps=96, delta=1e-4),
    ]
    strategy.aggregate_train(1, replies)
    # What the continuity check compares stays node 11's own.
    assert strategy.client_figures[0]["steps"] == 24
    assert strategy.epsilons() == [2.0]
    # Node 11's next report (1.0) keeps the refused charge counted.
    strategy.aggregate_train(2, [_reply(11, client=0, spent=False, steps=48)])
    assert strategy.client_figures[0]["epsilon"] == 1.0
    settings = small_settings()
    settings = dataclasses.replace(settings, run_dir=str(tmp_path))
    statement = guarantee(settings, client_rows(settings, strategy.client_figures))
    assert (statement["epsilon"], statement["delta"]) == (2.0, 1e-4)


def test_a_refused_ledger_query_reply_adds_nothing_to_the_statement() -> None:
    # A ledger query's reply carries no update and charges nothing: refused
    # for naming a client another node answers for, it counted its ledger's
    # epsilon in the run's statement as a refused train reply does (5.0
    # where the site that trained spent 0.5).
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    strategy.aggregate_train(1, [_reply(11, client=0, spent=False, steps=24)])
    strategy.binding.connected = {11, 13}
    query = train_reply(
        13,
        RecordDict(
            {
                "metrics": MetricRecord(
                    {"client-id": 0, "steps": 240.0, "epsilon": 5.0, "ledger-resets": 0}
                )
            }
        ),
    )
    strategy.admit(2, [], [query])
    (failure,) = strategy.round_failures
    assert failure.who == "node 13"
    assert strategy.epsilons() == [0.5]


def test_a_second_site_with_one_site_id_in_a_later_round_is_named() -> None:
    # Sampled in different rounds, the two sites never answer together; the
    # second's ledger lacks the first's charges, and its refusal names the
    # node that reported the client before.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    strategy.aggregate_train(1, [_reply(11, client=0, spent=False, steps=24)])
    _, _, accepted = strategy.aggregate_train(
        2, [_reply(12, client=0, spent=False, steps=24)]
    )
    assert accepted == []
    (failure,) = strategy.round_failures
    assert failure.reason.startswith("its privacy ledger held 0 steps before this")
    assert failure.reason.endswith(
        "at the site first. Node 11 reported client 0 before; if it still runs, "
        "two sites were started with the same --site-id (node config site-id): "
        "give each site its own and start its SuperNode again"
    )
    # The site itself, back under a new node id with its ledger, is taken.
    _, _, accepted = strategy.aggregate_train(
        3, [_reply(21, client=0, spent=False, steps=48)]
    )
    assert len(accepted) == 1
    # The same node whose ledger went back gets no word of another node.
    strategy.aggregate_train(4, [_reply(21, client=0, spent=False, steps=24)])
    failure = strategy.round_failures[-1]
    assert failure.round == 4 and failure.reason.startswith("its privacy ledger")
    assert "Node" not in failure.reason


def test_a_node_naming_another_client_id_is_refused_for_good_figures_kept() -> None:
    # A site's node could name a new client id in each reply: each became a
    # site in the server's figures, and spent ones counted toward the budget
    # stop's num_clients, which ended this run with client 0's budget left.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    stop = BudgetStop(strategy, num_clients=2, min_replies=1, last_round=5)
    strategy.aggregate_train(1, [_reply(11, client=0, spent=False, steps=24)])
    strategy.aggregate_train(1, [_reply(12, client=1, spent=True)])
    recorded = dict(strategy.client_figures)
    strategy.aggregate_train(2, [_reply(11, client=5, spent=True)])
    (failure,) = strategy.round_failures
    assert (failure.who, failure.permanent) == ("node 11", True)
    assert failure.reason == (
        "it names client 5, but it named client 0 before: a SuperNode answers for "
        "one --site-id (node config site-id) for the whole run; start it again "
        "with --site-id 0"
    )
    assert strategy.client_figures == recorded and strategy.spent_nodes == {12}
    assert not _stops(stop, 2)


def _configured_round(
    strategy: BudgetAwareStrategy, server_round: int, grid: FakeGrid, reply: Message
) -> list[Message]:
    """The replies `strategy` accepts of a round begun with `grid`'s nodes."""
    arrays = ArrayRecord({name: torch.zeros(shape) for name, shape in SHAPES.items()})
    strategy.configure_train(server_round, arrays, ConfigRecord(), grid)
    return strategy.aggregate_train(server_round, [reply])[2]


def test_a_client_id_a_connected_node_answers_for_waits_until_it_is_gone() -> None:
    # Another node could take a site's id with more steps than the site's
    # ledger holds: the server stated the site's epsilon from them, and the
    # site's own next reply was refused as a ledger that went back.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    both = FakeGrid(2, first_node=11)
    _configured_round(strategy, 1, both, _reply(11, client=0, spent=False, steps=24))
    hostile = _reply(12, client=0, spent=False, steps=48)
    assert _configured_round(strategy, 2, both, hostile) == []
    (failure,) = strategy.round_failures
    assert (failure.who, failure.permanent) == ("node 12", False)
    assert failure.reason == (
        "it names client 0, which node 11 answers for and which was connected as "
        "this round began: if this site's SuperNode was started again, it is "
        "taken once node 11 is counted gone (about a minute after it stopped); "
        "if not, two sites were started with the same --site-id (node config "
        "site-id); give each site its own and start its SuperNode again"
    )
    assert strategy.client_figures[0]["steps"] == 24 and strategy.reporters == {0: 11}
    # Site 0 killed and started again without node authentication: a new
    # node id (12 here), taken once the SuperLink no longer counts node 11.
    restarted = FakeGrid(2, first_node=12)
    accepted = _configured_round(strategy, 3, restarted, hostile)
    assert len(accepted) == 1 and strategy.reporters == {0: 12}
    assert not strategy.failed_nodes
    # Federated distillation's student rounds go on from the same binding.
    other = strategy.for_other_weights(FedAvg(), expected_shapes=SHAPES)
    assert other.binding is strategy.binding


def test_a_node_refused_for_good_does_not_keep_a_client_id_from_its_site() -> None:
    # While site 0 was down, a node naming it with a ledger that lacked its
    # charges was refused for good; connected still, it kept site 0 out.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    site = FakeGrid(2, first_node=11)
    _configured_round(strategy, 1, site, _reply(11, client=0, spent=False, steps=24))
    other = _reply(12, client=0, spent=False, steps=12)
    assert _configured_round(strategy, 2, FakeGrid(2, first_node=12), other) == []
    assert strategy.failed_nodes == {12}
    back = _reply(11, client=0, spent=False, steps=48)
    assert len(_configured_round(strategy, 3, site, back)) == 1


def test_a_client_whose_operator_reset_its_ledger_is_not_spent_again() -> None:
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    stop = BudgetStop(strategy, num_clients=2, min_replies=1, last_round=5)
    strategy.aggregate_train(1, [_reply(11, client=0, spent=True)])
    strategy.aggregate_train(1, [_reply(12, client=1, spent=True)])
    strategy.aggregate_train(2, [_reply(21, client=0, spent=False, resets=1)])
    assert spent_clients(strategy.client_figures) == {1}
    assert not _stops(stop, 2)


def test_a_ledger_reset_during_the_run_does_not_lower_the_rounds_epsilon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Client 0 spent 2.0 before its operator reset its ledger, 0.5 after:
    # summary.json states 2.0, but the round's console line and metrics.jsonl
    # showed "epsilon max 0.50", and the warning did not say 2.0 still counts.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    strategy.aggregate_train(1, [_reply(11, client=0, spent=False, steps=96)])
    strategy.aggregate_train(1, [_reply(12, client=1, spent=False, steps=48)])
    with caplog.at_level(logging.WARNING, logger="fedmodel.federation.reply_checks"):
        reset = _reply(11, client=0, spent=False, steps=24, resets=1)
        strategy.aggregate_train(2, [reset])
    assert "counting the epsilon 2.0000 it was charged before" in caplog.text
    state = RoundState(2, "teacher", [], 0, [], [], None)
    figures = round_figures(state, strategy)
    assert figures["epsilon_max"] == pytest.approx(2.0)
    assert figures["epsilon_mean"] == pytest.approx(1.5)


def _round(message: Message) -> int:
    """The round of a train message being sent (its config is the round's)."""
    return int(str(message.content["config"]["server-round"]))


def test_a_resume_under_new_node_ids_stops_only_once_every_client_is_spent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    # Each client's plan fits 5 rounds. In round 1, clients 0 and 1 are
    # charged 4 rounds more (their ledgers' charges from elsewhere, as a
    # site's are across runs), clients 2 and 3 are charged 2 more: 0 and 1
    # are spent from round 2 on, 2 and 3 from round 4.
    extra = {0: 4, 1: 4, 2: 2, 3: 2}
    grid = FakeGrid(4)

    def charge_more_then_kill_at_round_three(client: int, message: Message) -> None:
        if _round(message) == 3:
            raise Killed
        if _round(message) == 1:
            for _ in range(extra[client]):
                client_app.app(message, grid.contexts[FIRST_NODE + client])

    grid.before_train = charge_more_then_kill_at_round_three
    with logging_restored(), pytest.raises(Killed):
        run_federation(grid, _settings(run_dir, *FOUR_CLIENTS))
    assert _charged_rounds(run_dir, 0) == [1] * 5
    # The restarted server's nodes have other ids, as Flower's would.
    sent: list[tuple[int, int]] = []

    def keep_sent(client: int, message: Message) -> None:
        sent.append((_round(message), client))

    resumed = FakeGrid(4, before_train=keep_sent, first_node=FIRST_NODE + 1000)
    with caplog.at_level(logging.INFO, logger="fedmodel"):
        settings = _settings(run_dir, *FOUR_CLIENTS, "resume=true")
        summary = run_federation(resumed, settings)

    assert "after round 2 (clients with spent budgets: 2)" in caplog.text
    # Round 3 trained clients 2 and 3, while 0 and 1 answered "spent" again
    # under their new node ids: two clients spent, not four. In round 4,
    # clients 2 and 3 were spent too, and the budget stop ended the run
    # before round 5.
    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2, 3, 4]
    assert [r["clients_aggregated"] for r in summary["rounds"]] == [4, 2, 2, 0]
    assert _charged_rounds(run_dir, 2) == [1, 1, 1, 2, 3]
    assert _charged_rounds(run_dir, 0) == [1] * 5  # "spent" again costs nothing
    assert all(c["budget_exhausted"] for c in summary["clients"])
    # Spent in round 3, clients 0 and 1 were not sent round 4.
    assert sorted(sent) == [(3, 0), (3, 1), (3, 2), (3, 3), (4, 2), (4, 3)]


def test_a_client_that_failed_is_not_said_to_have_spent_its_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: its figures from before the resume said spent, so the budget
    # stop logged "every client has spent its privacy budget" before the run
    # failed on it. A client that failed in a round says nothing of its budget.
    run_dir = tmp_path / "run"
    three_rounds = "num_rounds=3"  # each client's plan fits 3 rounds
    # In round 1, client 0 is charged 3 rounds more and answers "spent";
    # client 1 is charged 2 more and trains: it is spent from round 2 on.
    extra = {0: 3, 1: 2}
    grid = FakeGrid(2)

    def charge_more_then_kill_at_round_two(client: int, message: Message) -> None:
        if _round(message) == 2:
            raise Killed
        for _ in range(extra[client]):
            client_app.app(message, grid.contexts[FIRST_NODE + client])

    grid.before_train = charge_more_then_kill_at_round_two
    with logging_restored(), pytest.raises(Killed):
        run_federation(grid, _settings(run_dir, three_rounds))
    client_ledger_path(run_dir, 0).write_text('{"format": "fedmodel-')  # damaged
    capsys.readouterr()
    resumed = FakeGrid(2, first_node=FIRST_NODE + 1000)
    with logging_restored(), pytest.raises(FedmodelError) as failed:
        run_federation(resumed, _settings(run_dir, three_rounds, "resume=true"))

    console = capsys.readouterr().err
    assert "round 2: client 1 has spent its privacy budget" in console
    assert "round 2: client 0 failed: privacy ledger " in console
    assert "every client has spent" not in console
    assert str(failed.value).startswith(
        "run failed after 1 aggregated round: round 2: no client returned an "
        "update; 1 failed (client 0: privacy ledger "
    )
