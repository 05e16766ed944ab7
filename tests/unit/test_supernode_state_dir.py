"""`fedmodel supernode` checks the privacy ledger its --state-dir holds, or lacks.

A mistyped --state-dir would have the site's first round open a new budget at
epsilon 0, an under-count that no later check catches: the launch says so on
the operator's console, and is silent for a folder that holds a ledger or an
archived one. A ledger no round could continue, or one that has spent more
than the site's --max-epsilon, stops the launch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import fedmodel.deploy.launch
from fedmodel.cli.main import run_command
from fedmodel.config.wording import decimals_up
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.ledger_record import LEDGER_FILE, LedgerRecord, RoundCharge
from tests.conftest import free_port


def _launch(
    tmp_path: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> list[str]:
    """The launch's warnings about the state folder; Flower is not started."""
    data = tmp_path / "notes.csv"
    data.write_text("text,label\nhello,a\n")
    started: list[list[str]] = []
    monkeypatch.setattr(fedmodel.deploy.launch, "exec_flower", started.append)
    args = ["supernode", "--superlink", "127.0.0.1:1", "--site-id", "4"]
    args += ["--runtime-port", str(free_port())]
    args += ["--data-file", str(data), "--state-dir", str(state_dir)]
    args += ["--max-epsilon", "3", "--delta", "1e-6", "--insecure"]
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        run_command(args)
    assert started and started[0][0] == "flower-supernode"
    return [r.getMessage() for r in caplog.records if "--state-dir" in r.getMessage()]


def test_a_state_dir_without_a_ledger_is_said_at_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state-typo"
    (said,) = _launch(tmp_path, state, monkeypatch, caplog)
    assert said.startswith(f"site 4: --state-dir {state} holds no privacy ledger")
    assert "starts a new budget at epsilon 0" in said
    assert f"give the --state-dir that holds its {LEDGER_FILE}" in said


@pytest.mark.parametrize("held", [LEDGER_FILE, "privacy_ledger.reset-1.json"])
def test_a_state_dir_with_a_ledger_is_not_said(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    held: str,
) -> None:
    state = tmp_path / "state"
    _ledger(state, client_id="4", delta=1e-6)  # this site's, at its --delta
    if held != LEDGER_FILE:  # only an archived one
        (state / LEDGER_FILE).rename(state / held)
    assert _launch(tmp_path, state, monkeypatch, caplog) == []


def _ledger(state: Path, *, client_id: str, delta: float) -> None:
    """A ledger as a site's first round writes it, charged nothing yet."""
    state.mkdir()
    record = LedgerRecord(
        client_id=client_id,
        accountant="prv",
        delta=delta,
        target_epsilon=8.0,
        noise_multiplier=2.3,
        sample_rate=1.0,
        data_fingerprint="f",
    )
    (state / LEDGER_FILE).write_text(record.to_json())


def _launch_code(
    data: Path,
    state: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str]:
    """`fedmodel supernode`'s exit code and stderr; Flower is not started."""
    monkeypatch.setattr(fedmodel.deploy.launch, "exec_flower", lambda command: None)
    args = ["supernode", "--superlink", "127.0.0.1:1", "--site-id", "4"]
    args += ["--runtime-port", str(free_port())]
    args += ["--data-file", str(data), "--state-dir", str(state)]
    args += ["--max-epsilon", "3", "--insecure", *extra]
    code = run_command(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("client_id", "delta", "said"),
    [
        # Another site's ledger (a copied command line's --state-dir).
        ("0", 1e-6, "would refuse its ledger: privacy ledger"),
        # The ledger's delta is not the --delta given (1e-6).
        ("4", 0.00125, "states epsilon at delta 0.00125, not 1e-06: set"),
    ],
)
def test_a_ledger_no_round_could_continue_stops_the_launch(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    client_id: str,
    delta: float,
    said: str,
) -> None:
    # Before, the SuperNode started and every round it was sent refused the
    # ledger, after the server had sampled it: the run failed (or went on
    # without the site) and the other sites were charged for that round.
    data = tmp_path / "notes.csv"
    data.write_text("text,label\nhello,a\n")
    state = tmp_path / "state"
    _ledger(state, client_id=client_id, delta=delta)
    code, err = _launch_code(data, state, monkeypatch, capsys, "--delta", "1e-6")
    assert code == 2
    assert said in err
    if client_id == "0":  # another site's ledger
        assert "belongs to client '0', not '4'" in err


def test_the_default_delta_of_a_grown_file_stops_the_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without --delta a round charges at 1/(10 n): a site that added records
    # moved it off its ledger's, which every round would refuse.
    data = tmp_path / "notes.csv"
    data.write_text("text,label\n" + "".join(f"note {i},a\n" for i in range(20)))
    state = tmp_path / "state"
    _ledger(state, client_id="4", delta=1 / (10 * 10))
    code, err = _launch_code(data, state, monkeypatch, capsys)
    assert code == 2
    assert "each round of site 4 (delta 0.005: 1/(10 n) for the 20 records" in err
    assert "states epsilon at delta 0.01, not 0.005" in err
    assert "--delta 0.01) to continue this budget" in err
    # The same folder launches with the ledger's delta.
    code, _ = _launch_code(data, state, monkeypatch, capsys, "--delta", "0.01")
    assert code == 0


def test_an_unreadable_ledger_stops_the_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every round would refuse it after the server had sampled the site.
    data = tmp_path / "notes.csv"
    data.write_text("text,label\nhello,a\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / LEDGER_FILE).write_text('{"client_id": "4"')  # cut off mid-write
    code, err = _launch_code(data, state, monkeypatch, capsys, "--delta", "1e-6")
    assert code == 2
    assert "each round of site 4 (delta 1e-06: its --delta" in err
    assert f"{LEDGER_FILE} is unusable: it cannot be read" in err


def test_a_cap_below_what_the_ledger_spent_stops_the_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, the SuperNode started and every round it was sent found its
    # budget exhausted, said only in each round once a run had started.
    data = tmp_path / "notes.csv"
    data.write_text("text,label\nhello,a\n")
    state = tmp_path / "state"
    history = [(1.1, 0.01, 100), (1.1, 0.01, 200)]
    spent = epsilon_for(history, delta=1e-6, accountant="rdp")  # 1.3953...
    record = LedgerRecord(
        client_id="4",
        accountant="rdp",
        delta=1e-6,
        target_epsilon=3.0,
        noise_multiplier=1.1,
        sample_rate=0.01,
        data_fingerprint="f",
        history=tuple(history),
        rounds=(RoundCharge(1, 100, 1.19), RoundCharge(2, 200, spent)),
    )
    state.mkdir()
    ledger = state / LEDGER_FILE
    ledger.write_text(record.to_json())
    written = ledger.read_bytes()
    shown = decimals_up(spent, 4)
    assert shown == "1.3954"  # rounded up, never below what was spent

    extra = ("--delta", "1e-6", "--max-epsilon", "1")
    code, err = _launch_code(data, state, monkeypatch, capsys, *extra)
    assert code == 2
    assert (
        "--max-epsilon (node config max-epsilon) 1 is below the epsilon 1.3954 "
        f"that site 4's ledger {ledger} has already spent (at delta 1e-06, in 2 "
        "rounds): a ledger never goes back, so every round the site is sent "
        "would find its budget exhausted. Give --max-epsilon 1.3954 or more"
    ) in err
    assert f"`fedmodel ledger reset --state-dir {state} --yes`" in err
    assert ledger.read_bytes() == written  # read, never lowered nor reset
    # `ledger show` states the same figure; a cap at it launches.
    assert run_command(["ledger", "show", "--state-dir", str(state)]) == 0
    assert "epsilon 1.3954 spent at delta 1e-06 in 2 rounds" in capsys.readouterr().out
    extra = ("--delta", "1e-6", "--max-epsilon", shown)
    assert _launch_code(data, state, monkeypatch, capsys, *extra)[0] == 0
    assert ledger.read_bytes() == written
