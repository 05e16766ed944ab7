"""Sites that die mid-round, on loopback with TLS and node authentication.

Three sites; once sites 1 and 2 have charged their ledgers for round 1, their
SuperNodes' process groups get SIGKILL (a machine that dies: no goodbye to
the SuperLink). The server leaves them out once Flower reports them
unavailable or `federation.round_timeout` passes, and round 1 ends with the
one site left. (The SuperNodes beat every 10 s instead of Flower's 30 s,
`Loopback.start_site(short_heartbeat=True)`: Flower reports a dead site
about 30 s after the kill instead of 70 s.) The dead sites' ledgers keep the
charge for round 1 although no update left them (an over-count, never an
under-count). Site 2 then comes back with the same key and state directory
and is accepted in round 2, its ledger continued:
`strategy.min_train_clients=2` makes round 2 wait until two sites are
connected (site 0 and site 2 back; site 1 stays dead), so two rounds
suffice. (Three sites are enough: each round starts a ClientApp process per
site, seconds of imports each.)
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fedmodel.run.metrics import read_rounds
from tests.integration.loopback import Loopback
from tests.integration.site_files import write_site_files

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUM_SITES = 3
KILLED = (1, 2)
KILL_ROUND = 1
NUM_ROUNDS = 2


def test_sites_killed_mid_round_are_left_out_and_keep_their_charge(
    tmp_path: Path, loopback: Loopback
) -> None:
    sites, test_file, labels = write_site_files(
        tmp_path, records_per_site=100, num_sites=NUM_SITES
    )
    loopback.start_superlink()

    def start(site_id: int) -> Any:
        return loopback.start_site(
            f"site-{site_id}",
            site_id=site_id,
            data_file=sites[site_id],
            max_epsilon=50.0,
            short_heartbeat=True,
        )

    supernodes = {}
    for site_id in range(NUM_SITES):
        loopback.site_keys(f"site-{site_id}", register=True)
        supernodes[site_id] = start(site_id)

    def ledger_rounds(site_id: int) -> list[int]:
        path = loopback.state(f"site-{site_id}") / "privacy_ledger.json"
        if not path.is_file():
            return []
        return [r["round"] for r in json.loads(path.read_text())["rounds"]]

    run_dir = tmp_path / "run"
    failures: list[BaseException] = []

    def run() -> None:
        try:
            loopback.run(
                "federation=deployment task=files model=tiny "
                f"num_clients={NUM_SITES} num_rounds={NUM_ROUNDS} "
                f"task.test_file={test_file} task.labels=[{','.join(labels)}] "
                "strategy.min_train_clients=2 federation.round_timeout=300 "
                "finetune.batch_size=16 finetune.local_epochs=5 "
                "privacy.target_epsilon=8 distill=off",
                run_dir=run_dir,
                timeout=2400,
            )
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            failures.append(exc)

    def kill_once_charged(site_id: int) -> None:
        # Each site dies as soon as its own ledger holds the round (the charge
        # comes before training), before its update can leave: waiting for
        # both sites let the first one's reply arrive.
        try:
            _wait_until(lambda: KILL_ROUND in ledger_rounds(site_id), timeout=600)
            loopback.kill_site(supernodes[site_id])
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            failures.append(exc)

    killers = [threading.Thread(target=kill_once_charged, args=(s,)) for s in KILLED]
    server = threading.Thread(target=run)
    for thread in (*killers, server):
        thread.start()
    for killer in killers:
        killer.join(timeout=700)
    assert not failures, failures
    charged = {s: ledger_rounds(s) for s in KILLED}

    # Site 2 comes back once the round it died in is over.
    _wait_until(
        lambda: len(read_rounds(run_dir)) >= KILL_ROUND if run_dir.exists() else False,
        timeout=600,
    )
    supernodes[2] = start(2)
    server.join(timeout=2400)
    assert not server.is_alive(), "the run did not finish"
    assert not failures, failures

    rounds = read_rounds(run_dir)
    assert "node heartbeat 10 s" in loopback.log("site-0"), (
        "site 0's SuperNode kept Flower's own heartbeat: has Flower renamed what "
        "tests/integration/short_heartbeat/sitecustomize.py sets?"
    )
    assert [r["round"] for r in rounds] == list(range(1, NUM_ROUNDS + 1))
    assert rounds[KILL_ROUND - 1]["clients_aggregated"] == NUM_SITES - len(KILLED)
    assert all(r["clients_aggregated"] >= 1 for r in rounds)
    # The dead sites' ledgers hold the round though no update of theirs arrived.
    for site_id in KILLED:
        assert charged[site_id] == [KILL_ROUND]
    assert ledger_rounds(1) == [KILL_ROUND]
    # Site 2, back, trained again on the same ledger in the next round.
    assert ledger_rounds(2) == [KILL_ROUND, KILL_ROUND + 1]
    assert rounds[KILL_ROUND]["clients_aggregated"] == 2
    assert ledger_rounds(0) == list(range(1, NUM_ROUNDS + 1))


def _wait_until(condition: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")
