"""A simulation on an existing Ray cluster (`federation.ray_address`).

The test starts a one-machine Ray cluster with `ray start --head --block`,
runs a small DP simulation on it, and stops the cluster by the PIDs of the
processes it started. The cluster's own session directory must hold the log
of a driver that connected to it: the run used that cluster, not a Ray of its
own.
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
from tests.conftest import small_config
from tests.integration.loopback import free_port, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture
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
        _wait_for_head(temp_dir, head)
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        root = psutil.Process(head.pid)
        stop([*root.children(recursive=True), root])
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_head(temp_dir: Path, head: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert head.poll() is None, "ray start exited early"
        if list(temp_dir.glob("session_*/logs/raylet.out")):
            time.sleep(2)
            return
        time.sleep(0.5)
    raise AssertionError("the Ray head did not start within 120 s")


def test_a_simulation_runs_on_an_existing_ray_cluster(
    tmp_path: Path, ray_cluster: tuple[str, Path]
) -> None:
    address, temp_dir = ray_cluster
    summary = simulate(
        small_config(
            "num_clients=2",
            "num_rounds=1",
            "finetune.local_epochs=1",
            f"federation.ray_address={address}",
        ),
        run_dir=tmp_path / "run",
    )
    assert summary["rounds_completed"] == 1
    assert [c["client_id"] for c in summary["clients"]] == [0, 1]
    assert all(c["epsilon"] > 0 for c in summary["clients"])
    drivers = list(temp_dir.glob("session_*/logs/python-core-driver-*"))
    assert drivers, "no driver connected to the cluster"
