"""The protocol: failure replies reduced to one line, and the ledger continuity rule."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict

from fedmodel.federation import client_app
from fedmodel.federation.messages import (
    CLIENT_REFUSED,
    failure_reason,
    read_failure,
)
from fedmodel.privacy.ledger_holding import ledger_regression
from tests.conftest import reply_metadata

RAY_WRAPPED = "\n".join(
    [
        "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:"
        "<'ray::ClientAppActor.run()",
        "Traceback (most recent call last):",
        '  File "/x/local_round.py", line 12, in run_local_round',
        "    raise FedmodelError(msg)",
        "fedmodel.errors.FedmodelError: privacy ledger /s/privacy_ledger.json is "
        "unusable: not JSON",
        "",
    ]
)


def _error_reply(node: int, code: int, reason: str) -> Message:
    return Message(error=Error(code=code, reason=reason), metadata=reply_metadata(node))


def test_our_failure_reply_names_the_client_in_one_line() -> None:
    reason = failure_reason(3, "privacy ledger x is unusable:\n  not JSON")
    failure = read_failure(2, _error_reply(11, CLIENT_REFUSED, reason), node_id=11)
    assert (failure.client_id, failure.node_id, failure.round) == (3, 11, 2)
    assert failure.reason == "privacy ledger x is unusable: not JSON"
    assert failure.permanent and failure.who == "client 3"


def test_a_ray_traceback_is_reduced_to_the_fedmodel_message() -> None:
    failure = read_failure(1, _error_reply(7, 2, RAY_WRAPPED), node_id=7)
    assert failure.reason == (
        "privacy ledger /s/privacy_ledger.json is unusable: not JSON"
    )
    assert failure.permanent and failure.who == "node 7"


def test_a_node_that_went_away_may_come_back() -> None:
    failure = read_failure(1, _error_reply(7, 5, "node unavailable"), node_id=7)
    assert failure.reason == "node unavailable" and not failure.permanent


def test_the_client_app_replies_with_its_error_not_a_traceback() -> None:
    content = RecordDict()
    message = Message(content=content, metadata=reply_metadata(0))
    context = Context(
        run_id=1,
        node_id=7,
        node_config={"data-file": "/nonexistent/site.csv", "site-id": 4},
        state=RecordDict(),
        run_config={},
    )
    reply = client_app.train(message, context)
    assert reply.has_error()
    assert reply.error.code in (CLIENT_REFUSED, CLIENT_REFUSED + 1)
    assert "\n" not in reply.error.reason
    assert "Traceback" not in reply.error.reason


EARLIER = {"epsilon": 4.0, "steps": 24.0, "ledger-resets": 0.0}


@pytest.mark.parametrize(
    ("now", "refused"),
    [
        ({"epsilon": 6.0, "steps": 48.0, "round-steps": 24.0}, False),
        # State folder deleted: a fresh ledger charged one round.
        ({"epsilon": 4.0, "steps": 24.0, "round-steps": 24.0}, True),
        # History edited from 24 steps to 1, then charged 24 more.
        ({"epsilon": 4.2, "steps": 25.0, "round-steps": 24.0}, True),
        # A spent client that did not train reports what it holds.
        ({"epsilon": 4.0, "steps": 24.0, "round-steps": 0.0}, False),
        ({"epsilon": 3.0, "steps": 24.0, "round-steps": 0.0}, True),
        # Its history's epsilon recomputed against the stored one it reported
        # before: one figure, within what opening a ledger accepts (1e-6).
        ({"epsilon": 4.0 * (1 - 1e-8), "steps": 24.0, "round-steps": 0.0}, False),
        ({"epsilon": 4.0 * (1 - 1e-4), "steps": 24.0, "round-steps": 0.0}, True),
        # Reset by its operator: the archive count went up.
        (
            {"epsilon": 2.0, "steps": 12.0, "round-steps": 12.0, "ledger-resets": 1.0},
            False,
        ),
    ],
)
def test_a_ledger_may_only_grow(now: dict[str, float], refused: bool) -> None:
    problem = ledger_regression(EARLIER, now)
    assert (problem is not None) == refused
    if problem:
        assert "the ledger was deleted, replaced or edited" in problem


def test_a_ledger_that_lost_steps_at_the_same_epsilon_is_named_by_its_steps() -> None:
    # A fresh ledger charged one round of a deleted one's size: same epsilon.
    problem = ledger_regression(
        EARLIER, {"epsilon": 4.0, "steps": 24.0, "round-steps": 24.0}
    )
    assert problem is not None
    what, _ = problem.split(": the ledger was deleted")
    assert what == (
        "its privacy ledger held 0 steps before this round, fewer than the 24 "
        "the server recorded for it"
    )


def test_a_ledger_that_lost_epsilon_is_named_by_its_epsilon() -> None:
    problem = ledger_regression(
        EARLIER, {"epsilon": 3.0, "steps": 24.0, "round-steps": 0.0}
    )
    assert problem is not None
    assert problem.startswith(
        "its privacy ledger reports epsilon 3.0000, below the 4.0000 the server "
        "recorded for it: "
    )


def test_the_epsilons_a_lost_charge_is_named_by_are_rounded_up() -> None:
    # Both were rounded to the nearest: 2.8000 below the 2.8567 recorded.
    problem = ledger_regression(
        {**EARLIER, "epsilon": 2.856718},
        {"epsilon": 2.80001, "steps": 24.0, "round-steps": 0.0},
    )
    assert problem is not None
    assert problem.startswith(
        "its privacy ledger reports epsilon 2.8001, below the 2.8568 the server "
    )


def test_a_client_the_server_never_heard_from_is_taken_as_it_is() -> None:
    assert ledger_regression(None, {"epsilon": 1.0, "steps": 5.0}) is None


def test_a_ledger_one_step_short_is_named_in_the_singular() -> None:
    problem = ledger_regression(
        {"epsilon": 1.0, "steps": 2.0}, {"epsilon": 1.0, "steps": 1.0}
    )
    assert problem is not None
    assert problem.startswith("its privacy ledger held 1 step before this round")


def test_the_ledger_query_of_another_version_is_refused_in_one_line() -> None:
    content = RecordDict(
        {"config": ConfigRecord({"fedmodel-version": "0.0.1", "run-dir": "/r"})}
    )
    message = Message(content=content, metadata=reply_metadata(0))
    context = Context(
        run_id=1,
        node_id=7,
        node_config={"partition-id": 3},
        state=RecordDict(),
        run_config={},
    )
    reply = client_app.query(message, context)
    assert reply.has_error() and reply.error.code == CLIENT_REFUSED
    assert reply.error.reason.startswith("client 3: the server runs fedmodel 0.0.1")
