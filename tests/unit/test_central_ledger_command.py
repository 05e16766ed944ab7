"""`fedmodel ledger` on a privacy=central run: show its ledger, never reset it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.client_level import CLIENT_LEVEL_ID
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_record import (
    CENTRAL_LEDGER_FILE,
    LEDGER_FILE,
    read_record,
)
from fedmodel.privacy.ledger_reopen import check_same_budget
from fedmodel.privacy.reset_overlap import spent_before_reset
from fedmodel.run.layout import RESOLVED_CONFIG


@pytest.fixture
def central_run(tmp_path: Path) -> Path:
    """A privacy=central run folder: its config and the server's ledger, 2 rounds."""
    history = [[1.2, 0.5, 1], [1.2, 0.5, 1]]
    charges = [
        {
            "round": n,
            "steps": 1,
            "epsilon": epsilon_for(
                [tuple(entry) for entry in history[:n]], delta=1e-3, accountant="rdp"
            ),
        }
        for n in (1, 2)
    ]
    ledger = {
        "format": "fedmodel-privacy-ledger",
        "version": 1,
        "client_id": CLIENT_LEVEL_ID,
        "accountant": "rdp",
        "delta": 1e-3,
        "target_epsilon": 8.0,
        "noise_multiplier": 1.2,
        "sample_rate": 0.5,
        "data_fingerprint": "4-clients",
        "budget_exhausted": False,
        "history": history,
        "rounds": charges,
    }
    (tmp_path / CENTRAL_LEDGER_FILE).write_text(json.dumps(ledger))
    (tmp_path / RESOLVED_CONFIG).write_text("privacy:\n  mode: central\n")
    return tmp_path


@pytest.mark.parametrize("exhausted", [False, True])
def test_show_prints_the_servers_ledger(
    central_run: Path, exhausted: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "no privacy ledger at RUN/privacy_ledger.json", exit 2.
    path = central_run / CENTRAL_LEDGER_FILE
    ledger = json.loads(path.read_text())
    path.write_text(json.dumps({**ledger, "budget_exhausted": exhausted}))
    spent = epsilon_for(
        [tuple(entry) for entry in ledger["history"]], delta=1e-3, accountant="rdp"
    )
    assert run_command(["ledger", "show", "--state-dir", str(central_run)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: the server's client-level ledger (privacy=central), epsilon "
        f"{decimals_up(spent, 4)} spent at delta 0.001 in 2 rounds; the run's "
        "target was 8"
        + (", and a round found the budget exhausted" if exhausted else "")
        + "\n"
    )


def test_show_states_the_servers_epsilon_rounded_up(
    central_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The ledger's 2 rounds spent 2.856718; show said "epsilon 2.8567", less.
    assert run_command(["ledger", "show", "--state-dir", str(central_run)]) == 0
    shown = capsys.readouterr().out.split("epsilon ")[1].split(" ")[0]
    assert shown == "2.8568"
    ledger = json.loads((central_run / CENTRAL_LEDGER_FILE).read_text())
    assert float(shown) >= ledger["rounds"][-1]["epsilon"]


@pytest.mark.parametrize("confirm", [[], ["--yes"]])
def test_reset_refuses_and_leaves_the_servers_ledger_as_it_was(
    central_run: Path, confirm: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = central_run / CENTRAL_LEDGER_FILE
    before = path.read_bytes()
    argv = ["ledger", "reset", "--state-dir", str(central_run), *confirm]
    assert run_command(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        f"{path} is the server's client-level ledger of a privacy=central run, "
        "not a site's, and is never reset" in err
    )
    assert "a new run in a folder of its own starts a new budget" in err
    assert path.read_bytes() == before
    assert sorted(p.name for p in central_run.iterdir()) == [
        CENTRAL_LEDGER_FILE,
        RESOLVED_CONFIG,
    ]


def test_a_sites_ledger_beside_it_makes_the_folder_the_sites(
    central_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The folder is a site's state directory: its own ledger is shown and reset.
    site = json.loads((central_run / CENTRAL_LEDGER_FILE).read_text())
    (central_run / LEDGER_FILE).write_text(json.dumps({**site, "client_id": "0"}))
    assert run_command(["ledger", "show", "--state-dir", str(central_run)]) == 0
    assert capsys.readouterr().out.startswith(
        f"{central_run / LEDGER_FILE}: client 0, epsilon "
    )
    argv = ["ledger", "reset", "--state-dir", str(central_run), "--yes"]
    assert run_command(argv) == 0
    assert capsys.readouterr().out.startswith(f"archived {central_run / LEDGER_FILE}")
    assert not (central_run / LEDGER_FILE).exists()
    assert (central_run / CENTRAL_LEDGER_FILE).is_file()


@pytest.mark.parametrize("damage", ["unreadable", "edited"])
def test_an_unusable_servers_ledger_is_refused_with_a_new_run_as_advice(
    central_run: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "the privacy this client has already spent" and `fedmodel ledger
    # reset --state-dir RUN --yes`, which refuses this ledger.
    path = central_run / CENTRAL_LEDGER_FILE
    if damage == "unreadable":
        path.write_text('{"format": "fedmodel-privacy-ledger", "vers')
    else:  # a noise multiplier raised by hand: the history spends less
        ledger = json.loads(path.read_text())
        path.write_text(json.dumps({**ledger, "history": [[2.0, 0.5, 1]] * 2}))
    plan = PrivacyPlan(
        target_epsilon=8.0,
        delta=1e-3,
        sample_rate=0.5,
        steps_per_round=1,
        planned_rounds=2,
        noise_multiplier=1.2,
        accountant="rdp",
    )
    with pytest.raises(FedmodelError) as opened:
        PrivacyLedger.open(
            path, client_id=CLIENT_LEVEL_ID, plan=plan, data_fingerprint="4-clients"
        )
    assert run_command(["ledger", "show", "--state-dir", str(central_run)]) == 2
    for message in (str(opened.value), capsys.readouterr().err):
        assert f"privacy ledger {path} is unusable: " in message
        assert "the server's client-level ledger of a privacy=central run" in message
        assert "or start a new run in a folder of its own" in message
        assert "this client" not in message
        assert "--state-dir" not in message


def test_another_budget_in_the_servers_ledger_is_refused_with_a_new_run_as_advice(
    central_run: Path,
) -> None:
    path = central_run / CENTRAL_LEDGER_FILE
    stored = read_record(path)
    with pytest.raises(FedmodelError) as refused:
        check_same_budget(path, stored=stored, wanted=replace(stored, accountant="prv"))
    assert str(refused.value).endswith(
        "set privacy.accountant=rdp to continue this budget, or start a new run in "
        "a folder of its own for a new budget (forgetting the epsilon already spent)"
    )


@pytest.mark.parametrize("folder", [".", "clients/client-0"])
def test_show_says_a_run_without_dp_keeps_no_ledger(
    tmp_path: Path, folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A privacy=off simulation's run folder, or a simulated client's folder in
    # it. Before: "no round has charged this site yet (...), or DIR is not the
    # site's state directory (the SuperNode's --state-dir)", as of a site.
    (tmp_path / RESOLVED_CONFIG).write_text("privacy:\n  mode: 'off'\n")
    state_dir = tmp_path / folder
    state_dir.mkdir(parents=True, exist_ok=True)
    assert run_command(["ledger", "show", "--state-dir", str(state_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fedmodel ledger show: error: --state-dir {state_dir}: the run in "
        f"{tmp_path} was made with privacy=off, so no client was charged and it "
        "keeps no privacy ledger"
    )


@pytest.mark.parametrize("what", ["show", "reset"])
def test_a_deployments_server_run_folder_points_to_the_sites(
    tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server's run folder of a deployment that ran its rounds. Before: "no
    # round has charged this site yet (...)", as of a site before its first round.
    (tmp_path / RESOLVED_CONFIG).write_text(
        "federation:\n  name: deployment\nprivacy:\n  mode: dpsgd\n"
    )
    assert run_command(["ledger", what, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fedmodel ledger {what}: error: --state-dir {tmp_path} is a deployment's "
        "run folder on the server: each site keeps its privacy ledger at the site, "
        "in its SuperNode's --state-dir (run this command there); "
        f"{tmp_path / 'summary.json'} holds the epsilon each site reported"
    )


def test_a_sites_reset_states_what_it_spent_rounded_up(
    central_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its 2.856718 was stated as 2.8567, less than the ledger spent.
    site = json.loads((central_run / CENTRAL_LEDGER_FILE).read_text())
    (central_run / LEDGER_FILE).write_text(json.dumps({**site, "client_id": "0"}))
    argv = ["ledger", "reset", "--state-dir", str(central_run)]
    assert run_command(argv) == 2
    assert "records epsilon 2.8568 already spent by client 0" in capsys.readouterr().err
    assert run_command([*argv, "--yes"]) == 0
    assert "(epsilon 2.8568, 2 rounds)" in capsys.readouterr().out
    again = spent_before_reset(
        central_run, fingerprint=site["data_fingerprint"], records=4, digests=None
    )
    assert "4 of 4 were already charged epsilon 2.8568 in" in again[-1]


@pytest.mark.parametrize("deployed", [False, True])
def test_a_central_run_before_its_first_charge_names_the_servers_ledger(
    tmp_path: Path, deployed: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a deployment's said each site keeps its ledger at the site, where
    # a privacy=central site keeps none; a simulation's, that no round had
    # charged "this site", as of a site's state directory.
    federation = "deployment" if deployed else "simulation"
    (tmp_path / RESOLVED_CONFIG).write_text(
        f"federation:\n  name: {federation}\nprivacy:\n  mode: central\n"
    )
    assert run_command(["ledger", "show", "--state-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel ledger show: error: --state-dir {tmp_path}: the run in "
        f"{tmp_path} (privacy=central) keeps one client-level ledger for every "
        f"client, {tmp_path / CENTRAL_LEDGER_FILE}, which no round has charged "
        "yet (it is written at the first)"
    )


def test_a_simulated_clients_folder_of_a_central_run_names_the_runs_ledger(
    central_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "no round has charged this site yet", though the run's one
    # ledger, beside the clients' folders, had charged two rounds.
    client = central_run / "clients" / "client-0"
    client.mkdir(parents=True)
    assert run_command(["ledger", "show", "--state-dir", str(client)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"keeps one client-level ledger for every client, "
            f"{central_run / CENTRAL_LEDGER_FILE}; give --state-dir {central_run}"
        )
    )
