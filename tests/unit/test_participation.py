"""`federation.min_replies`: dropouts are logged; too few updates stop the run.

The failure watch sees each round as the round loop hands it over; these
rounds are built from real Flower messages without a federation.
"""

from __future__ import annotations

import logging
import time

import pytest
from flwr.app import Message, Metadata, RecordDict

from fedmodel.federation.failure_watch import FailureWatch
from fedmodel.federation.messages import ClientFailure
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
