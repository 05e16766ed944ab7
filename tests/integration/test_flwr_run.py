"""`flwr run` of our ServerApp/ClientApp as a local simulation, end to end.

This is the path a user takes with Flower's own CLI: `fedmodel flwr-app`
writes the app folder, `flwr run` builds a FAB from it (no code: the apps come
from the installed fedmodel), starts a local SuperLink in the background (it
stays up after the run) and the SuperLink runs the simulation. The fixture
stops every process started under the test's FLWR_HOME, also when the test
fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fedmodel.run.metrics import read_rounds
from tests.conftest import FEW_LATENCY_CALLS, free_port
from tests.integration.loopback import stop, with_flwr_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = (
    "model=tiny num_clients=2 num_rounds=2 partition=iid "
    "task.max_train_examples=300 task.max_test_examples=100 finetune.batch_size=32 "
    "warm_start.enabled=false distill=off " + " ".join(FEW_LATENCY_CALLS)
)
# $FLWR_HOME/config.toml: one SuperLink connection, ":local:" = start one here.
FLOWER_CONFIG = """[superlink]
default = "local"

[superlink.local]
address = ":local:"
"""


def _tree(home: Path) -> list[psutil.Process]:
    """Processes started under `home` and their descendants (Ray's drop FLWR_HOME)."""
    found = {proc.pid: proc for proc in with_flwr_home(str(home).__eq__)}
    for proc in list(found.values()):
        try:
            found.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def _is_superlink(proc: psutil.Process) -> bool:
    try:
        return any(part.endswith("flower-superlink") for part in proc.cmdline())
    except psutil.Error:
        return False


@pytest.fixture
def flwr_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for the flwr CLI, isolated in tmp_path; stops what it started."""
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(FLOWER_CONFIG)
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        # flwr starts `flower-superlink` from PATH: use this venv's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # Else the SuperLink runs `uv sync` on the app's dependencies (torch...).
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        # Never talk to a local SuperLink someone else left on the default port.
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
    }
    try:
        yield env
    finally:
        # The SuperLink first (it stops its SuperExec), then what it leaves
        # running if the run is not over: the simulation process and Ray.
        tree = _tree(home)
        stop([p for p in tree if _is_superlink(p)])
        stop(tree + _tree(home))


def _flwr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["flwr", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_flwr_run_local_simulation(flwr_env: dict[str, str], tmp_path: Path) -> None:
    app = tmp_path / "fedmodel-app"
    written = subprocess.run(
        [f"{Path(sys.executable).parent}/fedmodel", "flwr-app", str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stdout + written.stderr
    run_dir = tmp_path / "run"

    run = _flwr(
        flwr_env,
        "run",
        str(app),
        "--stream",
        "--federation-config",
        # Both clients in one Ray actor, as in `tests.conftest.SMALL_RUN`.
        "num-supernodes=2 client-resources-num-cpus=2",
        "--run-config",
        f'overrides="{OVERRIDES}" run-dir="{run_dir}"',
    )

    assert run.returncode == 0, run.stdout + run.stderr
    run_id = re.search(r"Successfully started run (\d+)", run.stdout)
    assert run_id, run.stdout + run.stderr
    listed = _flwr(flwr_env, "list", "--run-id", run_id[1], "--format", "json")
    status = json.loads(listed.stdout)["runs"][0]["status"]
    assert status == "finished:completed", run.stdout + run.stderr

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds_completed"] == 2
    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2]
    assert all(r["clients_aggregated"] == 2 for r in read_rounds(run_dir))
    assert [c["client_id"] for c in summary["clients"]] == [0, 1]
    assert (run_dir / "model" / "config.json").is_file()
