"""A site's new budget after a reset names the records archived ledgers charged.

Real site rounds (`client_app.train` on a site's CSV file, Opacus charging the
site's ledger), a real `archive_ledger` (what `fedmodel ledger reset --yes`
runs), and `fedmodel ledger show` in-process.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fedmodel.cli.main import run_command
from fedmodel.config.wording import decimals_up
from fedmodel.federation import client_app
from fedmodel.privacy.charged_records import (
    ChargedRecords,
    digests_path,
    note_charged_records,
    read_charged_records,
)
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_record import LEDGER_FILE
from fedmodel.privacy.ledger_reset import archive_ledger
from tests.conftest import charged_plan
from tests.unit.test_site import (
    SITE_REPLY_METRICS,
    _site_round,
    deployment_settings,
    node_config,
)

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

NO_DIGESTS = "no readable record digests beside archived"


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The site's log lines reach caplog."""
    monkeypatch.setattr(client_app, "setup_logging", lambda: None)


def _charge_then_reset(
    tmp_path: Path, rows: pd.DataFrame, names: list[str]
) -> tuple[dict[str, object], Path, float, Path]:
    """One charged round on `rows` as the site's file, then a reset."""
    site, state = tmp_path / "site.csv", tmp_path / "state"
    rows.to_csv(site, index=False)
    config = node_config(site, state, **{"max-epsilon": 1.0})
    spent = _site_round(deployment_settings(names), config, 1)["epsilon"]
    _, archived = archive_ledger(state)
    return config, site, spent, archived


@pytest.mark.usefixtures("logged")
def test_a_grown_file_after_a_reset_names_the_records_already_charged(
    tmp_path: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The file grew from 80 records to 120, so its fingerprint moved and a
    # whole-file check said nothing; 80 of the new ledger's records were
    # charged by the archived one.
    rows, names = bank_rows
    config, site, spent, archived = _charge_then_reset(tmp_path, rows[:80], names)
    state = Path(str(config["state-dir"]))
    assert digests_path(archived).is_file()
    assert not digests_path(state / LEDGER_FILE).exists()
    rows.to_csv(site, index=False)
    caplog.clear()
    reply = _site_round(deployment_settings(names), config, 1)
    said = (
        f"{state}: of its training records, 80 of 120 were already charged "
        f"epsilon {decimals_up(spent, 4)} in 1 archived ledger (the latest "
        f"{archived.name}); the new budget starts at 0, but for those records "
        "the epsilons add up. Reset a ledger only for new records"
    )
    assert caplog.text.count(said) == 1
    assert NO_DIGESTS not in caplog.text
    assert set(reply) == SITE_REPLY_METRICS and reply["budget-exhausted"] == 0
    # `ledger show` says the same from the state directory alone.
    capsys.readouterr()
    assert run_command(["ledger", "show", "--state-dir", str(state)]) == 0
    shown = capsys.readouterr().out
    assert (
        "; of the records of the file it last charged, 80 of 120 were already "
        f"charged epsilon {decimals_up(spent, 4)} in 1 archived ledger (the "
        f"latest {archived.name}), and for those the epsilons add up"
    ) in shown
    # A later round of the same ledger says nothing more and hashes nothing new.
    before = digests_path(state / LEDGER_FILE).stat().st_mtime_ns
    caplog.clear()
    _site_round(deployment_settings(names), config, 2)
    assert "already charged" not in caplog.text
    assert digests_path(state / LEDGER_FILE).stat().st_mtime_ns == before


@pytest.mark.usefixtures("logged")
def test_a_disjoint_file_after_a_reset_is_not_named(
    tmp_path: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows, names = bank_rows
    config, site, _, archived = _charge_then_reset(tmp_path, rows[:60], names)
    rows[60:].to_csv(site, index=False)
    caplog.clear()
    _site_round(deployment_settings(names), config, 1)
    assert "already charged" not in caplog.text and NO_DIGESTS not in caplog.text
    # Each ledger's digests hold its own file's 60 records, and no other's.
    state = Path(str(config["state-dir"]))
    new = read_charged_records(digests_path(state / LEDGER_FILE))
    old = read_charged_records(digests_path(archived))
    assert new is not None and old is not None
    assert [len(d) for d in new.files.values()] == [60]
    assert [len(d) for d in old.files.values()] == [60]
    assert not new.digests() & old.digests()


@pytest.mark.usefixtures("logged")
def test_an_archive_without_digests_is_matched_by_its_whole_file(
    tmp_path: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A ledger archived before sites kept digests: the same file is still
    # recognised (by its fingerprint), a grown one cannot be, and the site
    # says once why.
    rows, names = bank_rows
    config, _, spent, archived = _charge_then_reset(tmp_path, rows[:80], names)
    digests_path(archived).unlink()
    caplog.clear()
    _site_round(deployment_settings(names), config, 1)
    state = config["state-dir"]
    assert (
        f"{state}: of its training records, 80 of 80 were already charged "
        f"epsilon {decimals_up(spent, 4)} in 1 archived ledger"
    ) in caplog.text
    assert caplog.text.count(f"{NO_DIGESTS} ledger {archived.name} (") == 1


@pytest.mark.usefixtures("logged")
def test_damaged_digests_fall_back_to_whole_files_and_training_goes_on(
    tmp_path: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows, names = bank_rows
    config, site, _, archived = _charge_then_reset(tmp_path, rows[:80], names)
    digests_path(archived).write_text('{"format": "fedmodel-record-digests"\n')
    rows.to_csv(site, index=False)
    caplog.clear()
    reply = _site_round(deployment_settings(names), config, 1)
    assert reply["budget-exhausted"] == 0 and reply["epsilon"] > 0
    assert caplog.text.count(NO_DIGESTS) == 1
    assert "already charged" not in caplog.text  # another file: nothing to match
    # The new ledger's own digests damaged: its rounds train on, and after a
    # second reset the same file is still recognised, by its fingerprint.
    state = Path(str(config["state-dir"]))
    digests_path(state / LEDGER_FILE).write_text("cut short by a full disk")
    second = _site_round(deployment_settings(names), config, 2)
    assert second["budget-exhausted"] == 0 and second["epsilon"] > reply["epsilon"]
    _, latest = archive_ledger(state)
    caplog.clear()
    _site_round(deployment_settings(names), config, 1)
    assert (
        f"{state}: of its training records, 120 of 120 were already charged "
        f"epsilon {decimals_up(second['epsilon'], 4)} in 1 archived ledger (the "
        f"latest {latest.name})"
    ) in caplog.text
    assert (
        caplog.text.count(f"{NO_DIGESTS} ledgers {archived.name}, {latest.name}") == 1
    )


def test_damaged_own_digests_are_said_and_written_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A charged ledger whose digest file a full disk cut short: the next
    # file it charges is noted afresh (the earlier files' records are lost to
    # the check, which says so) rather than the round failing.
    plan = charged_plan()
    path = tmp_path / LEDGER_FILE
    ledger = PrivacyLedger.open(path, client_id="3", plan=plan, data_fingerprint="a")
    ledger.charge(round_number=1, steps=plan.steps_per_round)
    note_charged_records(path, fingerprint="a", digests=[b"a" * 8] * 2, fresh=True)
    digests_path(path).write_text("cut short by a full disk")
    note_charged_records(path, fingerprint="b", digests=[b"b" * 8], fresh=False)
    assert caplog.text.count(f"record digests {digests_path(path)} cannot be read") == 1
    assert read_charged_records(digests_path(path)) == ChargedRecords(
        files={"b": (b"b" * 8,)}
    )
    # Read whole again, and a file already listed is not written again.
    note_charged_records(path, fingerprint="c", digests=[b"c" * 8], fresh=False)
    before = digests_path(path).stat().st_mtime_ns
    note_charged_records(path, fingerprint="c", digests=[b"d" * 8], fresh=False)
    assert digests_path(path).stat().st_mtime_ns == before
    charged = read_charged_records(digests_path(path))
    assert charged is not None and set(charged.files) == {"b", "c"}
