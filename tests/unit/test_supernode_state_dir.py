"""`fedmodel supernode` says when its --state-dir holds no privacy ledger.

A mistyped --state-dir would have the site's first round open a new budget at
epsilon 0, an under-count that no later check catches: the launch says so on
the operator's console, and is silent for a folder that holds a ledger or an
archived one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import fedmodel.deploy.launch
from fedmodel.cli.main import run_command
from fedmodel.privacy.ledger_record import LEDGER_FILE


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
    state.mkdir()
    (state / held).write_text("{}")
    assert _launch(tmp_path, state, monkeypatch, caplog) == []
