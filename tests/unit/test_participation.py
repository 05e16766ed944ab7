"""`federation.min_replies`: dropouts are logged; too few updates stop the run.

The failure watch sees each round as the round loop hands it over; these
rounds are built from real Flower messages without a federation.
"""

from __future__ import annotations

import logging
import time

import pytest
from flwr.app import Error, Message, Metadata, RecordDict

from fedmodel.client.site import RunRefusal
from fedmodel.federation.failure_watch import FailureWatch
from fedmodel.federation.messages import (
    CLIENT_REFUSED,
    CLIENT_REFUSED_RUN,
    ClientFailure,
    failure_reason,
    read_failure,
)
from fedmodel.federation.round_state import RoundState


def _metadata(node: int) -> Metadata:
    return Metadata(
        run_id=1,
        message_id=f"m-{node}",
        src_node_id=0,
        dst_node_id=node,
        reply_to_message_id="",
        group_id="3",
        created_at=time.time(),
        ttl=60.0,
        message_type="train",
    )


def _round(*, selected: int, answered: int, accepted: int, failed: int) -> RoundState:
    messages = [
        Message(content=RecordDict(), metadata=_metadata(node))
        for node in range(1, selected + 1)
    ]
    failures = [
        ClientFailure(3, node, node, "ValueError: bad row", permanent=False)
        for node in range(1, failed + 1)
    ]
    return RoundState(
        round=3,
        model_name="teacher",
        messages=messages,
        answered=answered,
        accepted=messages[:accepted],
        failures=failures,
        train_metrics=None,
    )


def test_dropouts_are_logged_and_the_round_counts_at_the_minimum(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = FailureWatch(allow_failed=False, min_replies=2)
    with caplog.at_level(logging.WARNING):
        stop, _ = watch.after_round(
            _round(selected=4, answered=2, accepted=2, failed=0), {}
        )
    assert not stop and watch.fatal is None
    assert "2 of 4 selected clients did not answer" in caplog.text


@pytest.mark.parametrize(("answered", "failed"), [(1, 0), (3, 2)])
def test_fewer_updates_than_min_replies_stop_the_run_with_the_reason(
    answered: int, failed: int
) -> None:
    watch = FailureWatch(allow_failed=True, min_replies=2)
    stop, _ = watch.after_round(
        _round(selected=4, answered=answered, accepted=1, failed=failed), {}
    )
    assert stop
    assert watch.fatal is not None
    assert "1 accepted update, fewer than federation.min_replies=2" in watch.fatal
    assert f"{failed} failed and {4 - answered} did not answer" in watch.fatal
    if failed:
        assert "the first failure: ValueError: bad row" in watch.fatal
    # The round loop did not load its aggregate: a resume runs it again.
    assert watch.fatal.endswith(
        ". The model does not hold round 3: continue with resume=true to run it again"
    )


def test_a_round_of_spent_budgets_is_no_failure() -> None:
    watch = FailureWatch(allow_failed=False, min_replies=3)
    stop, _ = watch.after_round(
        _round(selected=2, answered=2, accepted=0, failed=0), {}
    )
    assert not stop and watch.fatal is None


# A site's refusal of the run's labels, as site_agreement words it.
AGREEMENT = str(
    RunRefusal(
        "site 2 refuses the run's task.labels: they are not the 3 labels of its "
        "labels-file (the server's list lacks ['c']); the server must send the "
        "label set the sites agreed to"
    )
)
# A site's refusal of the run's privacy mode, as client/site.py words it.
PRIVACY = str(
    RunRefusal(
        "site 2 refuses a round without DP-SGD at the site (privacy=central): it "
        "caps its epsilon at 1 and noises its own updates. Run the federation "
        "with privacy=dpsgd"
    )
)


def _failure_reply(code: int, node: int, reason: str = AGREEMENT) -> ClientFailure:
    """The failure the server reads from client `node`'s error reply."""
    reply = Message(
        error=Error(code=code, reason=failure_reason(node, reason)),
        metadata=_metadata(node),
    )
    return read_failure(3, reply, node_id=node)


@pytest.mark.parametrize("reason", [AGREEMENT, PRIVACY])
@pytest.mark.parametrize("accepted", [0, 1])  # no update aggregated, or one
def test_a_site_refusing_a_setting_a_resume_keeps_stops_without_advising_one(
    accepted: int, reason: str
) -> None:
    # Before, the stop line ended "... continue with resume=true", which keeps
    # the labels (or privacy mode) the site refuses: the resumed run stopped
    # the same way.
    refused = _failure_reply(CLIENT_REFUSED_RUN, 2, reason)
    assert refused.refuses_run and refused.permanent and refused.who == "client 2"
    assert not _failure_reply(CLIENT_REFUSED, 2, reason).refuses_run
    state = _round(selected=2, answered=2, accepted=accepted, failed=0)
    state.failures = [refused]
    watch = FailureWatch(allow_failed=False, min_replies=1)
    stop, _ = watch.after_round(state, {})
    assert stop and watch.fatal is not None
    # The site's refusal ends saying a resume cannot change it; the line
    # quotes it without that (before: said twice), its own end says it once.
    quoted = reason.removesuffix(RunRefusal.ENDING)
    assert quoted != reason and watch.fatal.count("start a new run") == 1
    ending = watch.fatal.split(quoted)[1]
    assert "resume=true" not in watch.fatal
    assert ending.startswith(
        "). A resume keeps the settings client 2 refuses: start a new run, in a "
        "new run-dir, with settings the sites accept"
    )
