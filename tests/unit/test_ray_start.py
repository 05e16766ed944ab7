"""Ray is started before Flower's backend, and a start that timed out is retried.

Ray's own failure is stood in for here: it happens only on a machine busy
enough that Ray's raylet gives up on its agents (ray-project/ray#65983), which
no test can bring about on purpose. Every simulation test starts Ray for real.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.federation import simulation
from fedmodel.run.console import VERBOSE_ENV
from tests.conftest import small_settings
from tests.integration.loopback import free_port

CRASH_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
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
    calls = _fake_ray(monkeypatch, [ConnectionError("no GCS there")])
    # Something listens, so the address passes the connection check.
    with socket.create_server(("127.0.0.1", 0)) as listening:
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        federation = small_settings(f"federation.ray_address={address}").federation
        with pytest.raises(FedmodelError, match=f"federation.ray_address='{address}'"):
            simulation.start_ray(federation)
    assert len(calls) == 1


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_nothing_listens_at_is_refused_before_ray_init(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    """ray.init retried it for minutes on end, deaf to SIGTERM."""
    calls = _fake_ray(monkeypatch, [None])
    address = f"{scheme}127.0.0.1:{free_port()}"
    federation = small_settings(f"federation.ray_address={address}").federation
    with pytest.raises(FedmodelError, match="nothing takes a connection at 127.0"):
        simulation.start_ray(federation)
    assert calls == []


def test_rays_start_leaves_the_commands_sigterm_handler_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `ray.init` sets a SIGTERM handler of its own (Ray's driver then aborted
    # at SIGTERM, exit 134, with no line saying how to continue the run).
    def commands(signum: int, frame: object) -> None:
        """The handler the command set (`cli/interrupted.py`)."""

    _fake_ray(monkeypatch, [None])
    ray_init = simulation.ray.init

    def init(**kwargs: Any) -> None:
        ray_init(**kwargs)
        signal.signal(signal.SIGTERM, lambda signum, frame: None)

    monkeypatch.setattr(simulation.ray, "init", init)
    previous = signal.signal(signal.SIGTERM, commands)
    try:
        simulation.start_ray(small_settings().federation)
        assert signal.getsignal(signal.SIGTERM) is commands
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_rays_handler_takes_as_ray_starts_goes_to_the_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ray's handler exits (`sys.exit(15)`) at a SIGTERM in the seconds Ray
    # starts: the command stopped with no line saying how to continue the run.
    class Stopped(KeyboardInterrupt):
        """What the command's handler raises (`cli/interrupted.py`)."""

    def commands(signum: int, frame: object) -> None:
        raise Stopped(signum)

    def init(**kwargs: Any) -> None:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        signal.raise_signal(signal.SIGTERM)

    _fake_ray(monkeypatch, [None])
    monkeypatch.setattr(simulation.ray, "init", init)
    previous = signal.signal(signal.SIGTERM, commands)
    try:
        with pytest.raises(Stopped):
            simulation.start_ray(small_settings().federation)
        assert signal.getsignal(signal.SIGTERM) is commands
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_a_fresh_process(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a new Python, as a Ray worker or a new driver starts."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in (VERBOSE_ENV, "RAY_DEDUP_LOGS", "RAY_COLOR_PREFIX", CRASH_HANDLER):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )


def test_each_ray_worker_keeps_flowers_lines_off_the_console_from_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An actor ended before its first message logs Flower's warning on ending.

    Ray prints a worker's console on the driver's: a resumed run with no round
    left showed "Manually terminating ClientAppActor". A client's own lines
    still reach it.
    """
    calls = _fake_ray(monkeypatch, [None])
    simulation.start_ray(small_settings().federation)
    hook = calls[0]["runtime_env"]["worker_process_setup_hook"]
    worker = _in_a_fresh_process(
        "import logging\n"
        "from ray._common.utils import load_class\n"
        f"load_class({hook!r})()\n"  # what Ray does as a worker starts
        "from flwr.supercore.logger import log\n"
        "log(logging.WARNING, 'Manually terminating ClientAppActor')\n"
        "logging.getLogger('fedmodel.client').warning('client 1: delta 0.005')\n"
    )
    assert "Manually terminating" not in worker.stderr + worker.stdout
    assert "fedmodel client 1: delta 0.005" in worker.stderr


def test_the_settings_ray_reads_as_it_is_imported_are_made_before_it() -> None:
    """Each client's line reaches the console as written; Ray's crash handler is off.

    Ray folded lines that differ only in numbers, from two workers, into one:
    client 1's warning was left out, and client 2's shown as "[repeated 2x
    across cluster]". And Ray coloured the "(ClientAppActor pid=...)" before
    each line on any console, so a redirected one (`> run.log`, a scheduler's
    log) held escape codes. Below Python, Ray's crash handler took SIGTERM as
    Ray started (an abort, exit 134) and set it to the default as Ray shut
    down: a second SIGTERM while the command stopped ended it with no line,
    Ray's workers left running; the workers, which start from the command's
    environment, keep theirs. One fresh process for all three: it takes
    seconds to import the simulation.
    """
    lines = [f"fedmodel client {i}: delta 0.005 is above 0.001" for i in range(3)]
    pids = (11, 12, 11)  # two clients' workers, the first printing twice
    driver = _in_a_fresh_process(
        "import sys\n"
        "import fedmodel.federation.simulation\n"
        "from ray._private.ray_logging import stderr_deduplicator as dedup\n"
        "from ray._private.worker import print_worker_logs\n"
        "batches = []\n"
        f"for pid, line in zip({pids!r}, {lines!r}):\n"
        "    batch = {'ip': 'host', 'localhost': 'host', 'pid': pid, 'is_err': True,\n"
        "             'actor_name': 'ClientAppActor', 'lines': [line]}\n"
        "    batches += dedup.deduplicate(batch)\n"
        "for batch in [*batches, *dedup.flush()]:\n"
        "    print_worker_logs(batch, sys.stdout)\n"
        "import os\n"
        "from ray._private import ray_constants\n"
        f"print(ray_constants.{CRASH_HANDLER}, {CRASH_HANDLER!r} in os.environ)\n"
    )
    shown = [
        f"(ClientAppActor pid={pid}) {line}"
        for pid, line in zip(pids, lines, strict=True)
    ]
    crash_handler = "True False"  # off in the command, not set for its workers
    assert driver.stdout.splitlines() == [*shown, crash_handler]
