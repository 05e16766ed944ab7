"""A client whose state folder is wiped mid-run is refused before it trains.

A real Flower simulation (Ray backend): between rounds 1 and 2 client 0's
state folder is deleted, as a site's operator might. Its round 2 train
message carries what the server recorded from its round 1 reply; its ledger
holds nothing charged, fewer steps than that, so the client refuses before it
reads a record: it charges no fresh ledger and no update of its leaves it.
`fedmodel simulate`'s check before start-up cannot see this (the folder goes
mid-run), nor can any check at a deployed site.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Message

from fedmodel.federation import strategy as strategy_module
from fedmodel.federation.simulation import simulate
from fedmodel.run.layout import LOG_FILE, simulated_client_dir
from fedmodel.run.metrics import read_rounds
from tests.conftest import client_ledger_path, small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_client_whose_state_folder_was_wiped_mid_run_does_not_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    strategy_class = strategy_module.BudgetAwareStrategy
    configure = strategy_class.configure_train
    aggregate = strategy_class.aggregate_train
    received: dict[int, list[Message]] = {}

    def wipe_before_round_two(self: Any, server_round: int, *args: Any) -> Any:
        if server_round == 2:
            shutil.rmtree(simulated_client_dir(run_dir, 0))
        return configure(self, server_round, *args)

    def keep_replies(self: Any, server_round: int, replies: Any) -> Any:
        received[server_round] = list(replies)
        return aggregate(self, server_round, received[server_round])

    # The server runs in this process; the clients in a Ray actor.
    monkeypatch.setattr(strategy_class, "configure_train", wipe_before_round_two)
    monkeypatch.setattr(strategy_class, "aggregate_train", keep_replies)
    summary = simulate(
        small_config(
            "num_clients=2",
            "task.max_train_examples=300",
            "task.max_test_examples=100",
            "distill=off",
            "federation.allow_failed_clients=true",
            # The server's warm start (9 s of CPU on 2 cores) plays no part.
            "warm_start.enabled=false",
        ),
        run_dir=run_dir,
    )

    # Client 0's round 2 reply was its refusal, and it charged nothing.
    updates = [r for r in received[2] if not r.has_error()]
    assert [r.content["metrics"]["client-id"] for r in updates] == [1]
    assert len(received[2]) == 2
    assert not client_ledger_path(run_dir, 0).exists()
    assert len(json.loads(client_ledger_path(run_dir, 1).read_text())["rounds"]) == 2
    (failed,) = summary["failed_clients"]
    assert (failed["client_id"], failed["round"], failed["permanent"]) == (0, 2, True)
    assert failed["reason"].startswith(
        "its privacy ledger held 0 steps before this round, fewer than the "
    )
    round_two = read_rounds(run_dir)[1]
    assert (
        round_two["clients_selected"],
        round_two["clients_aggregated"],
        round_two["clients_failed"],
    ) == (2, 1, 1)
    # Round 1 had nothing to compare with, and round 2's nodes had replied
    # in round 1: no node was asked what its ledger holds.
    assert "ledger query" not in (run_dir / LOG_FILE).read_text()
