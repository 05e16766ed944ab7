"""A real deployment on loopback: SuperLink, two sites' SuperNodes, `flwr run`.

TLS and SuperNode authentication are on; the sites run from a venv that holds
fedmodel only as an installed wheel (the site operator's install); each site
reads its own file and caps its own epsilon; a SuperNode whose key was never
registered is refused; the server resumes from its checkpoint without
re-running rounds. Every process the test started is stopped by PID, also
when it fails.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from fedmodel.run.layout import LOG_FILE
from fedmodel.run.metrics import read_rounds
from tests.integration.loopback import Loopback
from tests.integration.site_files import site_venv, write_site_files

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVER_EPSILON = 8.0
SITE_CAPS = {0: 2.0, 1: 50.0}


def _command_once_exec(pid: int, program: str) -> list[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        command = psutil.Process(pid).cmdline()
        if any(part.endswith(program) for part in command):
            return command
        time.sleep(0.2)
    raise AssertionError(f"process {pid} did not become {program}: {command}")


def test_two_sites_train_over_tls_with_authentication_and_their_own_caps(
    tmp_path: Path, loopback: Loopback
) -> None:
    sites, test_file, labels = write_site_files(tmp_path, records_per_site=150)
    site_fedmodel = str(site_venv(tmp_path) / "fedmodel")
    loopback.start_superlink()
    # Site 0 names the label set and columns it agreed to; site 1 takes the
    # server's.
    agreed = tmp_path / "labels.txt"
    agreed.write_text("\n".join(labels) + "\n")
    for site_id, cap in SITE_CAPS.items():
        loopback.site_keys(f"site-{site_id}", register=True, fedmodel=site_fedmodel)
        supernode = loopback.start_site(
            f"site-{site_id}",
            site_id=site_id,
            data_file=sites[site_id],
            max_epsilon=cap,
            fedmodel=site_fedmodel,
            labels_file=agreed if site_id == 0 else None,
            columns=("text", "label") if site_id == 0 else None,
        )
        # `fedmodel supernode` became the site venv's flower-supernode.
        command = _command_once_exec(supernode.pid, "flower-supernode")
        assert command[0].startswith(str(tmp_path / "site-venv")), command
        pinned = f'labels-file={json.dumps(str(agreed))} text-column="text"'
        assert (pinned in " ".join(command)) == (site_id == 0), command
    loopback.site_keys("intruder", register=False)
    intruder = loopback.start_site(
        "intruder", site_id=0, data_file=sites[0], max_epsilon=50.0
    )

    run_dir = tmp_path / "run"
    base = (
        "federation=deployment task=files model=tiny num_clients=2 "
        f"task.test_file={test_file} task.labels=[{','.join(labels)}] "
        "finetune.batch_size=32 finetune.learning_rate=8.0"
    )

    def ledger(site_id: int) -> dict[str, Any]:
        path = loopback.state(f"site-{site_id}") / "privacy_ledger.json"
        return dict(json.loads(path.read_text()))

    loopback.run(
        f"{base} num_rounds=1 privacy.target_epsilon={SERVER_EPSILON}",
        run_dir=run_dir,
        timeout=900,
    )

    rounds = read_rounds(run_dir)
    assert [r["round"] for r in rounds] == [1]
    assert all(r["clients_aggregated"] == 2 for r in rounds)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [c["client_id"] for c in summary["clients"]] == [0, 1]
    # A DP site withholds its compute time: unknown to the server, not 0.
    assert summary["client_compute_seconds"] is None
    assert all(r["client_compute_seconds"] is None for r in rounds)
    # The run's log holds the run, not a line per HTTP request to the SuperLink.
    log = (run_dir / LOG_FILE).read_text()
    assert "round 1/1" in log and "httpx" not in log
    # The sites hold the training records: the server has nothing to warn of.
    assert "no training record has" not in log
    # Each site's own ledger, in its own state directory: site 0's cap (2)
    # wins over the server's 8; site 1's looser cap leaves the server's 8.
    for site_id, cap in SITE_CAPS.items():
        spent = ledger(site_id)
        target = min(cap, SERVER_EPSILON)
        assert spent["client_id"] == str(site_id)
        assert spent["target_epsilon"] == target
        assert [r["round"] for r in spent["rounds"]] == [1]
        assert 0 < spent["rounds"][-1]["epsilon"] <= target + 1e-9
        assert summary["clients"][site_id]["epsilon"] == spent["rounds"][-1]["epsilon"]

    # Site 0's cap (2) is below the server's 8: the epochs the server's rule
    # chose follow the cap (6, not 12); the learning rate the server set stays
    # 8, though it is the rule's own for epsilon 8 (at 2 the rule has 4).
    replaced = re.findall(
        r"site 0: the budget rule's settings .* target: (.*)", loopback.log("site-0")
    )
    assert replaced and {line.strip() for line in replaced} == {"local_epochs 6"}

    # Each site trained with the fedmodel installed at the site (the wheel in
    # its venv): the app folder's bundle carries no code of the server's.
    site_lib = re.escape(str(tmp_path / "site-venv" / "lib"))
    for site_id in SITE_CAPS:
        assert re.search(
            rf"site {site_id}: round 1, fedmodel \S+ from {site_lib}",
            loopback.log(f"site-{site_id}"),
        ), loopback.log(f"site-{site_id}")[-3000:]

    # The unregistered key was refused: that SuperNode gave up with an error.
    assert intruder.wait(timeout=60) != 0
    assert "Failed to activate SuperNode" in loopback.log("intruder")
    assert not (loopback.state("intruder") / "privacy_ledger.json").exists()

    # The server restarts and resumes for a second round with a larger target:
    # round 1 is not run again; site 0's own cap still holds it back.
    loopback.run(
        f"{base} num_rounds=2 privacy.target_epsilon=16 resume=true",
        run_dir=run_dir,
        timeout=900,
    )

    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2]
    assert read_rounds(run_dir)[1]["clients_aggregated"] == 1
    assert [r["round"] for r in ledger(0)["rounds"]] == [1]
    assert ledger(0)["budget_exhausted"] is True
    assert [r["round"] for r in ledger(1)["rounds"]] == [1, 2]
    assert ledger(1)["rounds"][-1]["epsilon"] <= 16
