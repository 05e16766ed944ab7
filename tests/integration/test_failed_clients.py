"""A client that fails under Ray is named, the run exits 2, and Ray is gone.

The ClientApp runs in a Ray worker; its FedmodelError comes back as one line,
never a traceback, and the command's final line says what failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import ONE_ACTOR

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_client_that_cannot_lock_its_ledger_fails_the_run_by_name(
    tmp_path: Path,
) -> None:
    # A folder where client 1's ledger lock goes: only its first charge, in
    # the Ray worker, finds it (an unusable ledger stops the resume before
    # Flower starts, `tests/unit/test_record_check.py`).
    lock = tmp_path / "clients" / "client-1" / "privacy_ledger.json.lock"
    lock.mkdir(parents=True)
    ledger = lock.with_name("privacy_ledger.json")
    command = [
        str(Path(sys.executable).parent / "fedmodel"),
        "simulate",
        "model=tiny",
        "task.max_train_examples=200",
        "task.max_test_examples=50",
        "num_clients=2",
        "num_rounds=1",
        "partition=iid",
        ONE_ACTOR,  # client 1 still fails in a Ray worker
        "finetune.batch_size=32",
        "warm_start.enabled=false",
        "distill=off",
        "resume=true",  # a folder holding client state takes no new run
        f"hydra.run.dir={tmp_path}",
    ]
    # Its own process group: whatever it starts (Ray's workers) stays in it.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout, stderr = process.communicate(timeout=600)
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "round 1: client 1 failed" in output
    assert "client-1/privacy_ledger.json" in output
    assert "Traceback" not in output
    assert "run failed after 1 aggregated round:" in done.stderr.splitlines()[-1]
    assert "cannot lock privacy ledger" in output
    assert not ledger.exists()  # the round was not charged
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert [f["client_id"] for f in summary["failed_clients"]] == [1]
    # Nothing the run started outlives it (Ray's workers included). An exited
    # process that no parent has reaped yet runs nothing, so it is not counted.
    left = [p.pid for p in psutil.process_iter() if _running_in(p, process.pid)]
    assert left == []


def _running_in(process: psutil.Process, group: int) -> bool:
    try:
        return (
            os.getpgid(process.pid) == group
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except (OSError, psutil.Error):
        return False
