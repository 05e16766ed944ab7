"""A ledger that cannot be read when a run ends leaves its epsilon unstated.

The replies' figures can be below what a ledger holds (a charge whose reply
never arrived), so a statement without that ledger could state less than was
spent: the worst thing a privacy statement can do.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fedmodel.config import settings_from_dict
from fedmodel.federation.server_app import run_federation
from fedmodel.federation.spent_budgets import figures_to_keep
from fedmodel.privacy.figure_keys import DELTA_KEY, EPSILON_KEY, LEDGER_RESETS_KEY
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE, LEDGER_FILE
from fedmodel.run.layout import simulated_client_dir
from fedmodel.run.summary import client_rows, guarantee
from fedmodel.serve.model_card import write_model_cards
from tests.conftest import small_config, small_settings
from tests.fake_grid import FakeGrid
from tests.unit.test_central_released_epsilon import _central_run


def test_an_unreadable_client_ledger_leaves_the_run_without_an_epsilon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from_dict(
        {**small_config("num_clients=2"), "run_dir": str(tmp_path)}
    )
    ledger = simulated_client_dir(tmp_path, 1) / LEDGER_FILE
    ledger.parent.mkdir(parents=True)
    ledger.write_text("{not json")
    reported = {EPSILON_KEY: 2.0, DELTA_KEY: 1e-5}
    rows = client_rows(settings, {0: reported, 1: reported})

    statement = guarantee(settings, rows)

    assert statement["epsilon"] is None and statement["delta"] is None
    assert statement["unstated"] == (
        "the privacy ledger of client 1 could not be read when the run ended"
    )
    assert "client 1's ledger cannot be read" in caplog.text
    card = _card(tmp_path, settings, statement)
    assert "at a cost this card does not state: the privacy ledger of client 1" in card
    assert "epsilon at most" not in card


def test_an_unreadable_server_ledger_leaves_a_central_run_without_an_epsilon(
    tmp_path: Path,
) -> None:
    settings = settings_from_dict({**_central_run(), "run_dir": str(tmp_path)})
    summary = run_federation(FakeGrid(2), settings)
    assert summary["privacy_guarantee"]["epsilon"] > 7.9
    assert summary["privacy_guarantee"]["unstated"] is None
    (tmp_path / CENTRAL_LEDGER_FILE).write_text("[]")

    statement = guarantee(settings, summary["clients"])

    # Before, the clients' figures (the same 7.99 here, less after a charge
    # no reply carried) were stated as if the ledger had agreed.
    assert statement["epsilon"] is None and statement["delta"] is None
    assert statement["unstated"] == (
        "the server's privacy ledger could not be read when the run ended"
    )


def test_readable_ledgers_leave_the_statement_as_the_figures_give_it(
    tmp_path: Path,
) -> None:
    settings = small_settings("num_clients=2")
    settings = replace(settings, run_dir=str(tmp_path))
    reported = {EPSILON_KEY: 2.0, DELTA_KEY: 1e-5}
    statement = guarantee(settings, client_rows(settings, {0: reported, 1: reported}))
    assert statement["epsilon"] == 2.0 and statement["unstated"] is None


def test_a_site_reset_during_the_run_keeps_its_earlier_charge_in_the_statement(
    tmp_path: Path,
) -> None:
    settings = small_settings("num_clients=2")
    settings = replace(settings, run_dir=str(tmp_path))
    recorded = {EPSILON_KEY: 16.1, DELTA_KEY: 1e-3, LEDGER_RESETS_KEY: 0.0}
    after_reset = {EPSILON_KEY: 2.0, DELTA_KEY: 1e-3, LEDGER_RESETS_KEY: 1.0}
    kept = figures_to_keep(after_reset, recorded)
    # A later round of the new budget keeps the earlier charge too.
    kept = figures_to_keep({**after_reset, EPSILON_KEY: 3.0}, kept)

    statement = guarantee(settings, client_rows(settings, {1: kept}))

    # Before, the run stated 3.0, though its model holds the updates of the
    # rounds that charged 16.1 (the loopback walk's card said "at most 13").
    assert kept[EPSILON_KEY] == 3.0
    assert statement["epsilon"] == 16.1


def _card(folder: Path, settings: Any, statement: dict[str, Any]) -> str:
    model = folder / "model"
    model.mkdir()
    (model / "config.json").write_text('{"id2label": {"0": "a", "1": "b"}}')
    summary = {
        "rounds_completed": 1,
        "rounds": [{"round": 1, "model": "teacher"}],
        "privacy_guarantee": statement,
        "clients": [],
        "teacher": {"accuracy": 0.5, "macro_f1": 0.5, "dir": str(model)},
    }
    (written,) = write_model_cards(summary, settings)
    return written.read_text()
