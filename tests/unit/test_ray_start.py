"""Ray is started before Flower's backend, and a start that timed out is retried.

Ray's own failure is stood in for here: it happens only on a machine busy
enough that Ray's raylet gives up on its agents (ray-project/ray#65983), which
no test can bring about on purpose. Every simulation test starts Ray for real.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.federation import simulation
from tests.conftest import small_settings

TIMED_OUT = Exception(
    "The current node timed out during startup. This could happen because some "
    "of the raylet failed to startup or the GCS has become overloaded."
)


def _fake_ray(
    monkeypatch: pytest.MonkeyPatch, outcomes: list[Exception | None]
) -> list[dict[str, Any]]:
    """`ray.init` fails or succeeds in turn as `outcomes` says; its calls."""
    calls: list[dict[str, Any]] = []

    def init(**kwargs: Any) -> None:
        calls.append(kwargs)
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(simulation.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(simulation.ray, "init", init)
    monkeypatch.setattr(simulation.ray, "shutdown", lambda: None)
    return calls


def test_a_start_that_timed_out_is_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _fake_ray(monkeypatch, [TIMED_OUT, TIMED_OUT, None])
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        simulation.start_ray(small_settings().federation)
    assert len(calls) == simulation.RAY_START_ATTEMPTS == 3
    assert caplog.text.count("starting it again") == 2
    # Each attempt asks for a Ray of its own, as Flower's backend would.
    for call in calls:
        assert call["address"] == "local"
        assert call["include_dashboard"] is False
        assert sys.path[0] in call["runtime_env"]["env_vars"]["PYTHONPATH"]


def test_a_start_that_keeps_timing_out_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _fake_ray(monkeypatch, [TIMED_OUT] * 3)
    with pytest.raises(FedmodelError, match=r"Ray did not start .*3 attempt") as info:
        simulation.start_ray(small_settings().federation)
    assert "/tmp/ray/session_latest/logs" in str(info.value)
    assert len(calls) == 3


def test_a_cluster_that_cannot_be_joined_is_named_without_retrying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _fake_ray(monkeypatch, [ConnectionError("no GCS at 10.0.0.5:6379")])
    federation = small_settings("federation.ray_address=10.0.0.5:6379").federation
    with pytest.raises(FedmodelError, match="federation.ray_address='10.0.0.5:6379'"):
        simulation.start_ray(federation)
    assert len(calls) == 1
