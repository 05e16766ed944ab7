"""`benchmarks/update_bytes.py` reads bytes per update from a run's metrics.jsonl.

The run is real: the ServerApp and ClientApps over a fake Grid (`FakeGrid`),
as in test_rounds.py, resumed with a ledger that lost its charges, so that the
ledger check holds a selected client back before its round trains.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fedmodel.federation.server_app import run_federation
from fedmodel.run.metrics import read_rounds
from tests.conftest import logging_restored
from tests.fake_grid import FakeGrid, Killed, killed_at_round
from tests.unit.test_rounds import _settings

REPO = Path(__file__).resolve().parents[2]


def _update_bytes(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The benchmark's module, imported as its script's folder has it."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.delitem(sys.modules, "update_bytes", raising=False)
    return importlib.import_module("update_bytes")


def test_a_client_held_back_before_training_is_not_counted_as_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: bytes_sent / clients_selected, which counts client 0 although
    # it was sent nothing, so round 2's update read half its size.
    run_dir = tmp_path / "run"
    with logging_restored(), pytest.raises(Killed):
        run_federation(FakeGrid(2, before_train=killed_at_round(2)), _settings(run_dir))
    shutil.rmtree(run_dir / "clients" / "client-0")
    allowed = _settings(run_dir, "resume=true", "federation.allow_failed_clients=true")
    with logging_restored():
        run_federation(FakeGrid(2), allowed)
    first, second = read_rounds(run_dir)
    assert (first["clients_selected"], first["clients_sent"]) == (2, 2)
    assert (second["clients_selected"], second["clients_sent"]) == (2, 1)
    update = first["bytes_sent"] // 2
    assert second["bytes_sent"] == second["bytes_received"] == update

    benchmark = _update_bytes(monkeypatch)
    capsys.readouterr()
    benchmark.print_runs([run_dir], [], model_name="tiny")
    row = next(
        line for line in capsys.readouterr().out.splitlines() if str(run_dir) in line
    )
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    per_sent, per_received = cells[6], cells[7]
    assert per_sent == per_received == f"{update:,}"
