"""`fedmodel simulate` as a user types it: a Hydra multirun.

A bad config's refusal (exit 2, the key named, no traceback) is checked in
tests/unit/test_cli_simulate.py, on the same command in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FEW_LATENCY_CALLS, ONE_ACTOR

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_cli_multirun_writes_one_folder_per_run(tmp_path: Path) -> None:
    fedmodel = Path(sys.executable).parent / "fedmodel"
    command = [
        str(fedmodel),
        "simulate",
        "--multirun",
        "model=tiny",
        "task.max_train_examples=400",
        "task.max_test_examples=100",
        "num_clients=2",
        "num_rounds=1",
        "finetune.batch_size=32",
        "partition=iid",
        ONE_ACTOR,
        "privacy.target_epsilon=2,4",
        "warm_start.enabled=false",
        "distill=off",
        *FEW_LATENCY_CALLS,
        f"hydra.sweep.dir={tmp_path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for run, epsilon in (("0", 2.0), ("1", 4.0)):
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        assert summary["rounds_completed"] == 1
        assert max(c["epsilon"] for c in summary["clients"]) <= epsilon
        assert (tmp_path / run / ".hydra" / "overrides.yaml").is_file()
    assert "final test accuracy" in done.stderr
    assert "after 1 round;" in done.stderr
