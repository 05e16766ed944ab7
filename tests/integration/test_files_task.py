"""`fedmodel simulate task=files` through the real command, with the defaults.

Each train file is one site's records: with no partition named, client i
trains on exactly `task.train_files[i]`, sites smaller than one expected
batch train too, and the console shows fedmodel's lines only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedmodel.config import compose_config
from fedmodel.run.layout import RESOLVED_CONFIG, SUMMARY_FILE, TEACHER_DIR
from tests.conftest import FEW_LATENCY_CALLS, ONE_ACTOR

pytestmark = pytest.mark.integration

FEDMODEL = str(Path(sys.executable).parent / "fedmodel")
WORDS = {
    "cardiac": "heart chest pain palpitations murmur",
    "respiratory": "cough lung breath wheeze sputum",
}


def _site_file(path: Path, records: int, *, first_label: str) -> None:
    labels = [first_label, *(name for name in WORDS if name != first_label)]
    rows = []
    for i in range(records):
        label = labels[0] if i % 4 else labels[1]  # label skew per site
        rows.append(f"{WORDS[label]} case {i},{label}")
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_each_file_is_one_client_by_default(tmp_path: Path) -> None:
    sizes = (60, 100)
    files = []
    for site, (records, first) in enumerate(zip(sizes, WORDS, strict=True)):
        files.append(tmp_path / f"site{site}.csv")
        _site_file(files[-1], records, first_label=first)
    _site_file(tmp_path / "test.csv", 20, first_label="cardiac")
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [
            FEDMODEL,
            "simulate",
            "task=files",
            f"task.train_files=[{files[0]},{files[1]}]",
            f"task.test_file={tmp_path / 'test.csv'}",
            "model=tiny",
            "num_rounds=1",
            "distill=off",
            ONE_ACTOR,
            *FEW_LATENCY_CALLS,
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    held = [client["num_train_examples"] for client in summary["clients"]]
    assert held == list(sizes)
    # Sites smaller than the budget rule's expected batch (512) train at
    # sample rate 1: every step takes all their records.
    assert [client["sample_rate"] for client in summary["clients"]] == [1.0, 1.0]
    # Library progress bars (flwr-datasets' partitioner's among them) stay off
    # the console.
    assert "Generating partition_id_to_indices" not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_run_the_server_refuses_before_round_one_leaves_no_folder(
    tmp_path: Path,
) -> None:
    # The server's checks before round 1 (`federation/preflight.py`), which
    # `fedmodel simulate` asks before Flower starts: a run they refuse has
    # trained nothing, so no folder is left (Hydra's, the log and Flower's
    # were, when only the ServerApp asked them, after Flower wrote its files).
    site = tmp_path / "site0.csv"
    _site_file(site, 40, first_label="cardiac")
    _site_file(tmp_path / "test.csv", 20, first_label="cardiac")
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [
            FEDMODEL,
            "simulate",
            "task=files",
            f"task.train_files=[{site}]",
            f"task.test_file={tmp_path / 'test.csv'}",
            f"distill.transfer_file={site}",
            "model=tiny",
            "num_rounds=1",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "is the same file as task.train_files[0]" in done.stderr
    assert not run_dir.exists()


def test_an_audit_of_a_files_run_shows_no_library_bar(tmp_path: Path) -> None:
    # The audit deals the files out as the run did (flwr-datasets' natural
    # partitioner, whose tqdm bar wrote to the console); this run held no
    # record out, so the audit stops once it has them, naming the key.
    files = []
    for site, first in enumerate(WORDS):
        files.append(tmp_path / f"site{site}.csv")
        _site_file(files[-1], 20, first_label=first)
    _site_file(tmp_path / "test.csv", 10, first_label="cardiac")
    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    raw = compose_config(
        [
            "task=files",
            f"task.train_files=[{files[0]},{files[1]}]",
            f"task.test_file={tmp_path / 'test.csv'}",
            "model=tiny",
        ]
    )
    (run_dir / RESOLVED_CONFIG).write_text(yaml.safe_dump(raw), encoding="utf-8")
    (run_dir / SUMMARY_FILE).write_text("{}", encoding="utf-8")
    (run_dir / TEACHER_DIR / "config.json").write_text("{}", encoding="utf-8")
    done = subprocess.run(
        [FEDMODEL, "audit", str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "task.val_fraction above 0" in done.stderr
    assert "Generating partition_id_to_indices" not in done.stdout + done.stderr
