"""A train message carries its node's recorded ledger figures; the client checks them.

The real ServerApp and ClientApp over a fake Grid (`FakeGrid`), as in
test_rounds.py: a node that reported its client's figures in this server
process is sent no ledger query, and the client refuses to train where its
ledger holds less than the figures its train message carries.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from flwr.app import Message

from fedmodel.errors import FedmodelError
from fedmodel.federation import reply_checks
from fedmodel.federation.continuity import check_recorded_ledger, recorded_for
from fedmodel.federation.messages import RECORDED_KEY
from fedmodel.federation.server_app import run_federation
from fedmodel.privacy.figure_keys import STEPS_KEY
from fedmodel.privacy.ledger_holding import held_figures
from fedmodel.privacy.ledger_reset import archive_ledger
from fedmodel.run.layout import simulated_client_dir
from tests.conftest import charge_client_ledger, client_ledger_path, logging_restored
from tests.fake_grid import FIRST_NODE, FakeGrid, Killed, killed_at_round
from tests.unit.test_rounds import _charged_rounds, _settings


def _round(message: Message) -> int:
    """The round of a train message being sent (its config is the round's)."""
    return int(str(message.content["config"]["server-round"]))


def test_after_a_resume_only_its_first_round_asks_the_ledgers(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"

    with logging_restored(), pytest.raises(Killed):
        run_federation(
            FakeGrid(2, before_train=killed_at_round(2)),
            _settings(run_dir, "num_rounds=3"),
        )
    # What each client's ledger held as its train message arrived.
    held: dict[tuple[int, int], dict[str, float]] = {}

    def keep_held(client: int, message: Message) -> None:
        state_dir = simulated_client_dir(run_dir, client)
        held[(_round(message), client)] = held_figures(state_dir)

    grid = FakeGrid(2, before_train=keep_held)
    summary = run_federation(grid, _settings(run_dir, "num_rounds=3", "resume=true"))

    assert summary["status"] == "ok" and summary["rounds_completed"] == 3
    # The resumed server had not heard from these nodes: it asked them. From
    # round 3 on it knew each node's client and told it what it recorded.
    sent = [m.metadata.message_type for m in grid.sent]
    assert sent == ["query"] * 2 + ["train"] * 4
    assert sorted(held) == [(2, 0), (2, 1), (3, 0), (3, 1)]
    assert all(RECORDED_KEY not in m.content for m in grid.sent[:4])
    for message in grid.sent[4:]:
        client = message.metadata.dst_node_id - FIRST_NODE
        recorded = dict(message.content[RECORDED_KEY])
        assert recorded == {**held[(3, client)], "client-id": client}
        assert recorded["steps"] > 0
        assert _charged_rounds(run_dir, client) == [1, 2, 3]


def test_a_wiped_ledger_is_refused_by_its_client_before_it_charges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before round 2 client 0's state folder is deleted and client 1's ledger
    # is archived as `fedmodel ledger reset` archives a site's (which refuses
    # a simulated client's folder, as the server's words say). A simulated
    # client trains on the same records all run: an archived ledger starts no
    # new budget for it. Before, client 1 trained round 2 on a fresh ledger,
    # and the run stated its epsilon from round 2 alone.
    # On the reply checks' own logger: a client's round unpropagates fedmodel's.
    warned: list[str] = []
    monkeypatch.setattr(
        reply_checks.log, "warning", lambda *a: warned.append(a[0] % a[1:])
    )
    run_dir = tmp_path / "run"

    def damage(client: int, message: Message) -> None:
        if _round(message) != 2:
            return
        state_dir = simulated_client_dir(run_dir, client)
        if client == 0:
            shutil.rmtree(state_dir)
        elif client == 1:
            archive_ledger(state_dir)

    grid = FakeGrid(3, before_train=damage)
    allowed = "federation.allow_failed_clients=true"
    summary = run_federation(
        grid, _settings(run_dir, "num_rounds=2", "num_clients=3", allowed)
    )

    assert [m.metadata.message_type for m in grid.sent] == ["train"] * 6
    failed = {f["client_id"]: f for f in summary["failed_clients"]}
    assert sorted(failed) == [0, 1]
    for f in failed.values():
        assert (f["round"], f["permanent"]) == (2, True)
        assert f["reason"].startswith(
            "its privacy ledger held 0 steps before this round, fewer than the "
        )
        # A simulated client: `fedmodel ledger reset` refuses its folder.
        assert "or start a new run in a folder of its own" in f["reason"]
        assert "ledger reset" not in f["reason"]
    assert not client_ledger_path(run_dir, 0).exists()
    # Refused before it charged: no new ledger, the archive holds round 1.
    assert not client_ledger_path(run_dir, 1).exists()
    (archived,) = simulated_client_dir(run_dir, 1).glob("privacy_ledger.reset-*")
    assert [r["round"] for r in json.loads(archived.read_text())["rounds"]] == [1]
    assert _charged_rounds(run_dir, 2) == [1, 2]
    assert summary["rounds"][-1]["clients_aggregated"] == 1
    assert not any("was reset" in line for line in warned)


def test_an_archived_ledger_starts_a_new_budget_at_a_site_only(
    tmp_path: Path,
) -> None:
    records = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    charge_client_ledger(tmp_path, 0, records)
    state_dir = simulated_client_dir(tmp_path, 0)
    recorded = recorded_for(0, held_figures(state_dir))
    # Charges lost at a site: its way out is its operator's `ledger reset`.
    lost = {**recorded, STEPS_KEY: recorded[STEPS_KEY] + 100}
    with pytest.raises(FedmodelError, match="run `fedmodel ledger reset --state"):
        check_recorded_ledger(lost, client_id=0, state_dir=state_dir, simulated=False)
    archive_ledger(state_dir)
    # A site's operator ran `fedmodel ledger reset`: the site decides.
    check_recorded_ledger(recorded, client_id=0, state_dir=state_dir, simulated=False)
    with pytest.raises(FedmodelError, match="Restore the client's ledger, or start"):
        check_recorded_ledger(
            recorded, client_id=0, state_dir=state_dir, simulated=True
        )


def test_a_node_that_names_another_client_is_refused(tmp_path: Path) -> None:
    # Before round 2 the two nodes swap clients, as a SuperNode restarted
    # under its key with another site's id would.
    run_dir = tmp_path / "run"
    grid = FakeGrid(2)
    swapped: list[int] = []

    def swap(client: int, message: Message) -> None:
        if _round(message) == 2 and not swapped:
            swapped.append(client)
            first, second = (grid.contexts[FIRST_NODE + i] for i in (0, 1))
            first.node_config, second.node_config = (
                second.node_config,
                first.node_config,
            )

    grid.before_train = swap
    with pytest.raises(FedmodelError, match="no client returned an update") as error:
        run_federation(grid, _settings(run_dir, "num_rounds=2"))

    assert (
        "client 1: the server knows this node as client 0 in this run and it is "
        "client 1 now: a site keeps its id for the whole run; start this "
        "SuperNode again with --site-id 0"
    ) in str(error.value)
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    failed = summary["failed_clients"]
    assert sorted(f["client_id"] for f in failed) == [0, 1]
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1]
