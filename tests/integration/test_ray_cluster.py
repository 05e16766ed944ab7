"""A simulation on an existing Ray cluster (`federation.ray_address`), and not
on one it was not told to use.

The module starts a one-machine Ray cluster with `ray start --head --block`
and kills it by the PIDs of the processes it started. A driver that connects
to the cluster leaves its log in the cluster's own session directory: a run
given the cluster's address must leave one (it used that cluster, not a Ray of
its own), and a run given none must not, even with `RAY_ADDRESS` naming the
cluster (Ray would join it if asked for no address in particular).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fedmodel.federation.simulation import simulate
from tests.conftest import free_port, small_config
from tests.integration.loopback import listening_ports, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")
# One round of two clients; the tests read where it ran, not what it learnt.
ONE_ROUND = (
    "num_clients=2",
    "num_rounds=1",
    "finetune.local_epochs=1",
    "warm_start.enabled=false",
    "distill=off",
)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[tuple[str, Path]]:
    """A Ray head on 127.0.0.1: its address and its temporary directory."""
    # Ray's socket paths must stay short: a directory under /tmp, not pytest's.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port()
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--disable-usage-stats"]
        + ["--node-ip-address", "127.0.0.1", "--port", str(port)]
        + ["--num-cpus", "2", "--include-dashboard", "false"]
        + ["--temp-dir", str(temp_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_head(temp_dir, head, port)
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        # No grace: asked, the head's processes took 5 s to end, and nothing
        # of this throwaway cluster is read after the tests.
        root = psutil.Process(head.pid)
        stop([*root.children(recursive=True), root], grace=0)
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_head(temp_dir: Path, head: subprocess.Popen[bytes], port: int) -> None:
    """Until the head's GCS listens on `port` and its raylet has started.

    A driver then waits on its own (`ray.init`) for the raylet to register.
    The head's own processes must listen: not merely some process that took
    the free port first on a busy machine (`listening_ports`).
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert head.poll() is None, "ray start exited early"
        started = list(temp_dir.glob("session_*/logs/raylet.out"))
        if started and port in listening_ports(head.pid):
            return
        time.sleep(0.1)
    raise AssertionError("the Ray head did not start within 120 s")


def test_a_simulation_runs_on_an_existing_ray_cluster(
    tmp_path: Path, ray_cluster: tuple[str, Path]
) -> None:
    address, temp_dir = ray_cluster
    summary = simulate(
        small_config(*ONE_ROUND, f"federation.ray_address={address}"),
        run_dir=tmp_path / "run",
    )
    assert summary["rounds_completed"] == 1
    assert [c["client_id"] for c in summary["clients"]] == [0, 1]
    assert all(c["epsilon"] > 0 for c in summary["clients"])
    assert _drivers(temp_dir), "no driver connected to the cluster"


def test_without_an_address_a_simulation_keeps_to_its_own_ray(
    tmp_path: Path,
    ray_cluster: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address, temp_dir = ray_cluster
    before = _drivers(temp_dir)
    monkeypatch.setenv("RAY_ADDRESS", address)
    summary = simulate(small_config(*ONE_ROUND), run_dir=tmp_path / "run")
    assert summary["rounds_completed"] == 1
    assert _drivers(temp_dir) == before, "the run joined a cluster it was not given"


def _drivers(temp_dir: Path) -> set[Path]:
    return set(temp_dir.glob("session_*/logs/python-core-driver-*"))
