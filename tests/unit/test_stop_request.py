"""Ctrl-C (or SIGTERM) stops the ServerApp's thread: no round after it, no summary.

Flower runs the ServerApp in a thread of its own that goes on after Ctrl-C;
before, a 3-round run stopped in round 2 could finish round 3 and write an ok
summary.json in the moment before the command exited, and was then refused
by `fedmodel resume` as finished. Here the request is set from inside a
round (as Ctrl-C would, while the clients train), on the real ServerApp over
the in-process grid, so nothing depends on timing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from flwr.app import Message, MessageType

from fedmodel.cli import interrupted
from fedmodel.cli.interrupted import Terminated, signals_stop_the_server
from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.federation import server_app, server_finish
from fedmodel.federation.server_app import run_federation
from fedmodel.run.metrics import read_rounds
from fedmodel.run.stop_request import STOP_REQUESTED, RunStopped
from tests.conftest import logging_restored
from tests.fake_grid import FakeGrid, Killed, killed_at_round
from tests.unit.test_rounds import TINY_RUN

pytestmark = pytest.mark.usefixtures("no_stop_request")


def _settings(run_dir: Path, *overrides: str) -> RunSettings:
    raw = compose_config([*TINY_RUN, "num_rounds=3", *overrides])
    return settings_from_dict({**raw, "run_dir": str(run_dir)})


def _train_messages(grid: FakeGrid) -> int:
    return sum(m.metadata.message_type == "train" for m in grid.sent)


def test_ctrl_c_in_round_two_starts_no_round_and_writes_no_summary(
    tmp_path: Path,
) -> None:
    def ctrl_c_in_round_two(client: int, message: Message) -> None:
        if message.content["config"]["server-round"] == 2:
            STOP_REQUESTED.set()

    run_dir = tmp_path / "run"
    grid = FakeGrid(2, before_train=ctrl_c_in_round_two)
    with logging_restored(), pytest.raises(RunStopped, match="round 2's replies"):
        run_federation(grid, _settings(run_dir))
    assert _train_messages(grid) == 4  # rounds 1 and 2 to 2 clients; no round 3
    # Round 2's replies came after the interrupt: not aggregated, not kept,
    # so a resume runs round 2 again. No export, no summary.
    assert [r["round"] for r in read_rounds(run_dir)] == [1]
    assert not (run_dir / "summary.json").exists()
    assert not (run_dir / "model").exists()

    # The folder is a run to resume, not a finished one.
    STOP_REQUESTED.clear()
    with logging_restored():
        summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert summary["status"] == "ok"
    assert [r["round"] for r in summary["rounds"]] == [1, 2, 3]


def test_a_stop_requested_before_round_one_sends_no_message(tmp_path: Path) -> None:
    STOP_REQUESTED.set()
    grid = FakeGrid(2)
    with logging_restored(), pytest.raises(RunStopped, match="teacher round 1"):
        run_federation(grid, _settings(tmp_path / "run"))
    assert grid.sent == []
    assert not (tmp_path / "run" / "summary.json").exists()


class _CtrlCAtLedgerQuery(FakeGrid):
    """Ctrl-C while the round's ledger query is answered, as a user's may land."""

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Deliver the messages; a query's answers come with the stop requested."""
        messages = list(messages)
        replies = super().send_and_receive(messages, timeout=timeout)
        if any(m.metadata.message_type == MessageType.QUERY for m in messages):
            STOP_REQUESTED.set()
        return replies


def test_ctrl_c_during_a_ledger_query_sends_no_train_message(tmp_path: Path) -> None:
    # A resume's first round asks each node's ledger before it trains (Flower
    # draws node ids anew): 3 s in a smoke simulation. A stop then still sent
    # the train messages, and each client charged its ledger for a round the
    # server would not take: a smoke run resumed and interrupted as round 2
    # began had both clients charged for it (epsilon 7.99 of 8), and its next
    # resume ran round 2 with both refused by their caps, the model unchanged.
    run_dir = tmp_path / "run"
    with logging_restored(), pytest.raises(Killed):
        run_federation(FakeGrid(2, before_train=killed_at_round(2)), _settings(run_dir))
    ledgers = _ledgers(run_dir)
    assert len(ledgers) == 2
    grid = _CtrlCAtLedgerQuery(2, first_node=2001)
    with logging_restored(), pytest.raises(RunStopped, match="round 2's train"):
        run_federation(grid, _settings(run_dir, "resume=true"))
    assert grid.sent and _train_messages(grid) == 0  # queried, not trained
    assert _ledgers(run_dir) == ledgers  # round 2 charged to no one


def _ledgers(run_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in run_dir.glob("clients/*/privacy_ledger.json")}


@pytest.mark.parametrize(
    ("module", "step", "exported"),
    [
        (server_app, "keep_selected", False),
        (server_finish, "finish_models", True),
        (server_finish, "plot_progress", True),
        (server_finish, "write_model_cards", True),
    ],
)
def test_a_stop_after_the_last_round_writes_no_summary(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    step: str,
    exported: bool,
) -> None:
    # Ctrl-C once the last round is done: before the export (as the server
    # picks the model to keep), during it, or as the cards are written (the
    # command then says "interrupted"). The round is checkpointed; the run is
    # not concluded.
    original = getattr(module, step)

    def then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        STOP_REQUESTED.set()
        return result

    monkeypatch.setattr(module, step, then_ctrl_c)
    run_dir = tmp_path / "run"
    with logging_restored(), pytest.raises(RunStopped):
        run_federation(FakeGrid(2), _settings(run_dir, "num_rounds=1"))
    assert [r["round"] for r in read_rounds(run_dir)] == [1]
    saved = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=True)
    assert saved["round"] == 1
    assert (run_dir / "model").exists() == exported
    assert not (run_dir / "summary.json").exists()


class Exited(Exception):
    """`stop_interrupted`'s exit, stood in for: the test process goes on."""


@pytest.fixture
def stopped_by(monkeypatch: pytest.MonkeyPatch) -> list[KeyboardInterrupt]:
    """The interrupts the command was stopped by (`stop_interrupted`'s)."""
    stops: list[KeyboardInterrupt] = []

    def stop_interrupted(prog: str, run_dir: Path, interrupt: Any) -> None:
        stops.append(interrupt)
        raise Exited

    monkeypatch.setattr(interrupted, "stop_interrupted", stop_interrupted)
    return stops


@contextlib.contextmanager
def _handling(signum: signal.Signals, handler: Any) -> Iterator[None]:
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


def _stopping(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    return signals_stop_the_server("fedmodel simulate", run_dir)


def test_ctrl_c_requests_the_stop_before_it_interrupts(
    tmp_path: Path, stopped_by: list[KeyboardInterrupt]
) -> None:
    # Python's own handler, as in a command run from a shell (a pytest-xdist
    # worker has its own).
    with _handling(signal.SIGINT, signal.default_int_handler):
        with pytest.raises(Exited), _stopping(tmp_path):
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert [type(stop) for stop in stopped_by] == [KeyboardInterrupt]
    assert STOP_REQUESTED.is_set()


def test_an_ignored_ctrl_c_stays_ignored(
    tmp_path: Path, stopped_by: list[KeyboardInterrupt]
) -> None:
    # A background job of a shell without job control ignores SIGINT.
    with _handling(signal.SIGINT, signal.SIG_IGN):
        with _stopping(tmp_path):
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert stopped_by == []
    assert not STOP_REQUESTED.is_set()


def test_sigterm_requests_the_stop_and_takes_ctrl_cs_way_out(
    tmp_path: Path, stopped_by: list[KeyboardInterrupt]
) -> None:
    # A job scheduler's time limit, `timeout` or `kill`: before, the process
    # ended with no line (Ray's handler aborted it, exit 134).
    with _handling(signal.SIGTERM, signal.SIG_DFL):
        with pytest.raises(Exited), _stopping(tmp_path):
            signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert [type(stop) for stop in stopped_by] == [Terminated]
    assert STOP_REQUESTED.is_set()


def test_a_sigterm_handler_someone_else_installed_stays_theirs(
    tmp_path: Path, stopped_by: list[KeyboardInterrupt]
) -> None:
    # An embedding program's own handler (a notebook's, a workflow runner's).
    caught: list[int] = []

    def theirs(signum: int, frame: object) -> None:
        caught.append(signum)

    with _handling(signal.SIGTERM, theirs):
        with _stopping(tmp_path):
            signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is theirs
    assert caught == [signal.SIGTERM]
    assert stopped_by == []
    assert not STOP_REQUESTED.is_set()


@pytest.mark.parametrize(
    "first", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"]
)
def test_signals_while_the_run_stops_are_noted_once_and_do_not_break_the_stop(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    stopped_by: list[KeyboardInterrupt],
    first: signal.Signals,
) -> None:
    # Impatient users press Ctrl-C twice: raised again while Flower and Ray
    # shut down (seconds), the interrupt broke their shutdown off halfway,
    # and one as the command wrote its line gave a traceback instead.
    shut_down = []
    with _handling(signal.SIGINT, signal.default_int_handler):
        with _handling(signal.SIGTERM, signal.SIG_DFL):
            with pytest.raises(Exited), _stopping(tmp_path / "run"):
                try:
                    signal.raise_signal(first)
                finally:  # Flower's and Ray's shutdown, as the interrupt unwinds
                    for again in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
                        signal.raise_signal(again)
                    shut_down.append(True)
    assert shut_down == [True]
    expected = Terminated if first == signal.SIGTERM else KeyboardInterrupt
    assert [type(stop) for stop in stopped_by] == [expected]
    noted = capfd.readouterr().err
    assert noted == (
        f"fedmodel simulate: already stopping; the run is kept in {tmp_path / 'run'}. "
        "The line saying how to continue it follows once Flower and Ray have "
        f"stopped (seconds); `kill -KILL {os.getpid()}` ends the command at once, "
        "and the run can still be continued.\n"
    )
