"""A real deployment on loopback: SuperLink, two sites' SuperNodes, `flwr run`.

TLS and SuperNode authentication are on; each site reads its own file and caps
its own epsilon; a SuperNode whose key was never registered is refused. The
fixture stops every process the test started, by PID, also when it fails.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data import load_task
from fedmodel.report import read_rounds
from tests.integration.processes import (
    VENV_BIN,
    flower_env,
    free_port,
    start,
    stop_started,
    wait_for_port,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NUM_LABELS = 5
SERVER_EPSILON = 8.0
SITE_CAPS = {0: 2.0, 1: 50.0}


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts; all stopped (with their children) at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        yield processes
    finally:
        stop_started(processes, flwr_homes=tmp_path)


def _write_site_files(directory: Path) -> tuple[list[Path], Path, list[str]]:
    """Two sites' files (CSV, JSONL) and the server's test file, from Banking77."""
    settings = settings_from_dict(compose_config(["model=tiny"]))
    task = load_task(settings.task, seed=0)
    names = list(task.label_names[:NUM_LABELS])

    def frame(split: object) -> pd.DataFrame:
        rows = [r for r in split if r["label"] < NUM_LABELS]  # type: ignore[attr-defined]
        return pd.DataFrame(
            {
                "text": [r["text"] for r in rows],
                "label": [names[r["label"]] for r in rows],
            }
        )

    train = frame(task.train).sample(frac=1.0, random_state=0)
    sites = [directory / "site0.csv", directory / "site1.jsonl"]
    train.iloc[:150].to_csv(sites[0], index=False)
    train.iloc[150:300].to_json(sites[1], orient="records", lines=True)
    test = directory / "test.parquet"
    frame(task.test).iloc[:100].to_parquet(test)
    return sites, test, names


def _run(command: list[str], env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout


def test_two_sites_train_over_tls_with_authentication_and_their_own_caps(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    sites, test_file, labels = _write_site_files(tmp_path)
    fedmodel = f"{VENV_BIN}/fedmodel"
    env = flower_env(tmp_path / "operator-flwr-home")
    certs, keys = tmp_path / "certs", tmp_path / "keys"
    _run(
        [fedmodel, "certs", "superlink", "--dir", str(certs), "--host", "127.0.0.1"],
        env,
    )
    for name in ("site-0", "site-1", "intruder"):
        _run([fedmodel, "certs", "site", "--dir", str(keys), "--name", name], env)

    port = free_port()
    superlink = start(
        [fedmodel, "superlink", "--certs", str(certs), "--host", "127.0.0.1"]
        + ["--port", str(port)],
        env=env,
        log=tmp_path / "superlink.log",
        cwd=tmp_path,
    )
    started.append(superlink)
    wait_for_port(port, process=superlink, timeout=60)
    home = Path(env["FLWR_HOME"])
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "site-test"\n\n[superlink.site-test]\n'
        f'address = "127.0.0.1:{port}"\nroot-certificates = "{certs / "ca.crt"}"\n'
    )
    for site_id in SITE_CAPS:
        _run(["flwr", "supernode", "register", str(keys / f"site-{site_id}.pub")], env)

    def supernode(
        name: str, site_id: int, data: Path, cap: float
    ) -> subprocess.Popen[bytes]:
        process = start(
            [fedmodel, "supernode", "--superlink", f"127.0.0.1:{port}"]
            + ["--ca-cert", str(certs / "ca.crt"), "--auth-key", str(keys / name)]
            + ["--site-id", str(site_id), "--data-file", str(data)]
            + ["--state-dir", str(tmp_path / f"state-{name}")]
            + ["--max-epsilon", str(cap), "--runtime-port", str(free_port())],
            env=flower_env(tmp_path / f"home-{name}"),
            log=tmp_path / f"{name}.log",
            cwd=tmp_path,
        )
        started.append(process)
        return process

    for site_id, cap in SITE_CAPS.items():
        supernode(f"site-{site_id}", site_id, sites[site_id], cap)
    intruder = supernode("intruder", 0, sites[0], 50.0)

    run_dir = tmp_path / "run"
    base = (
        f"federation=deployment task=files model=tiny num_clients=2 "
        f"task.test_file={test_file} task.labels=[{','.join(labels)}] "
        "finetune.batch_size=32"
    )

    def flwr_run(overrides: str) -> None:
        output = _run(
            ["flwr", "run", ".", "--stream", "--run-config"]
            + [f'overrides="{base} {overrides}" run-dir="{run_dir}"'],
            env,
            timeout=240,
        )
        run_id = re.search(r"Successfully started run (\d+)", output)
        assert run_id, output
        listed = _run(["flwr", "list", "--run-id", run_id[1], "--format", "json"], env)
        assert json.loads(listed)["runs"][0]["status"] == "finished:completed", output

    def ledger(site_id: int) -> dict[str, Any]:
        path = tmp_path / f"state-site-{site_id}" / "privacy_ledger.json"
        return dict(json.loads(path.read_text()))

    flwr_run(f"num_rounds=2 privacy.target_epsilon={SERVER_EPSILON}")

    rounds = read_rounds(run_dir)
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["clients_aggregated"] == 2 for r in rounds)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [c["client_id"] for c in summary["clients"]] == [0, 1]
    # Each site's own ledger, in its own state directory: site 0's cap (2)
    # wins over the server's 8; site 1's looser cap leaves the server's 8.
    for site_id, cap in SITE_CAPS.items():
        spent = ledger(site_id)
        target = min(cap, SERVER_EPSILON)
        assert spent["client_id"] == str(site_id)
        assert spent["target_epsilon"] == target
        assert [r["round"] for r in spent["rounds"]] == [1, 2]
        assert 0 < spent["rounds"][-1]["epsilon"] <= target + 1e-9
        assert summary["clients"][site_id]["epsilon"] == spent["rounds"][-1]["epsilon"]

    # The server restarts and resumes for a third round with a larger target:
    # rounds 1-2 are not run again; site 0's own cap still holds it back.
    flwr_run("num_rounds=3 privacy.target_epsilon=12 resume=true")

    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2, 3]
    assert read_rounds(run_dir)[2]["clients_aggregated"] == 1
    assert [r["round"] for r in ledger(0)["rounds"]] == [1, 2]
    assert ledger(0)["budget_exhausted"] is True
    assert [r["round"] for r in ledger(1)["rounds"]] == [1, 2, 3]
    assert ledger(1)["rounds"][-1]["epsilon"] <= 12

    # The unregistered key was refused: that SuperNode gave up with an error.
    assert intruder.wait(timeout=60) != 0
    assert "Failed to activate SuperNode" in (tmp_path / "intruder.log").read_text()
    assert not (tmp_path / "state-intruder" / "privacy_ledger.json").exists()
