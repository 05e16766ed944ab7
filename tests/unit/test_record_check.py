"""A resume whose clients' records changed stops before any round; so does a round."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from fedmodel.client import record_check
from fedmodel.client.record_check import check_simulated_clients
from fedmodel.client.round_records import RoundRecords
from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.config.wording import decimals_up
from fedmodel.data.clients import _partitioned_task, load_client_data
from fedmodel.errors import FedmodelError
from fedmodel.federation import server_app, server_setup
from fedmodel.privacy.client_level import CLIENT_LEVEL_ID, plan_client_level
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_holding import held_figures
from fedmodel.privacy.ledger_record import (
    CENTRAL_LEDGER_FILE,
    LEDGER_FILE,
    LedgerRecord,
    LedgerRefusal,
    read_record,
)
from fedmodel.privacy.ledger_reset import archive_ledger
from fedmodel.run.checkpoint import (
    Checkpoint,
    recorded_client_figures,
    save_checkpoint,
)
from fedmodel.run.folder_check import check_run_folder
from fedmodel.run.layout import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    TASK_FILE_HASHES,
    simulated_client_dir,
)
from fedmodel.run.task_file_hashes import record_task_files
from tests.conftest import (
    charge_client_ledger,
    charged_plan,
    client_ledger,
    client_ledger_path,
    logging_restored,
)
from tests.fake_grid import FAKE_GRID_RUN, FakeGrid, flwr_run_context


def _write_sites(folder: Path, rows: int) -> list[str]:
    files = []
    for site in range(2):
        path = folder / f"site{site}.csv"
        lines = [
            f"site {site} note {i},{'yes' if i % 2 else 'no'}" for i in range(rows)
        ]
        path.write_text("text,label\n" + "\n".join(lines) + "\n")
        files.append(str(path))
    return files


def _settings(
    tmp_path: Path,
    *overrides: str,
    test_labels: tuple[str, str] = ("yes", "no"),
    partition: str = "iid",  # the files pooled, then dealt out
) -> RunSettings:
    first, second = test_labels
    (tmp_path / "test.csv").write_text(
        f"text,label\nheld out,{first}\nheld back,{second}\n"
    )
    settings = settings_from_dict(
        compose_config(
            [
                "task=files",
                "model=tiny",
                f"partition={partition}",
                "num_clients=2",
                "distill=off",
                f"run_dir={tmp_path / 'run'}",
                *overrides,
            ]
        )
    )
    task = dataclasses.replace(
        settings.task,
        train_files=[str(tmp_path / f"site{site}.csv") for site in range(2)],
        test_file=str(tmp_path / "test.csv"),
    )
    return dataclasses.replace(settings, task=task)


def test_a_resume_whose_records_changed_is_refused(tmp_path: Path) -> None:
    _write_sites(tmp_path, rows=30)
    run = _settings(tmp_path)
    for client in range(run.num_clients):  # what the run's rounds charged
        train, _, _ = load_client_data(run, client)
        charge_client_ledger(tmp_path / "run", client, train)
    resumed = _settings(tmp_path, "resume=true")
    check_simulated_clients(resumed)  # the same records: it goes on
    _write_sites(tmp_path, rows=31)  # one record more in each file
    _partitioned_task.cache_clear()  # a resume is a new process
    ledger_before = client_ledger_path(tmp_path / "run", 0).read_bytes()
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(resumed)
    message = str(refused.value)
    assert "client 0's training records are not the ones" in message
    assert str(client_ledger_path(tmp_path / "run", 0)) in message
    assert "Restore the data the run began with" in message
    assert client_ledger_path(tmp_path / "run", 0).read_bytes() == ledger_before
    check_simulated_clients(run)  # a new run is the run folder check's to refuse


def _first_weights(settings: RunSettings) -> dict[str, Any]:
    """The trainable weights the server sends before round 1."""
    from fedmodel.model.finetune import prepare_for_finetuning
    from fedmodel.model.head import trainable_state
    from fedmodel.model.load import build_classifier

    _, _, labels = load_client_data(settings, 0)
    model = build_classifier(settings.model, label_names=labels, seed=settings.seed)
    return trainable_state(prepare_for_finetuning(model, settings.finetune))


def _round(
    run: RunSettings,
    number: int,
    *,
    weights: dict[str, Any],
    client_id: int = 0,
    **site: Any,
) -> Any:
    """Client `client_id`'s round `number`; `site` (state_dir, records) for a site's."""
    from fedmodel.client.local_round import run_local_round

    return run_local_round(
        run,
        client_id=client_id,
        state_dir=site.pop("state_dir", simulated_client_dir(run.run_dir, client_id)),
        global_weights=weights,
        round_number=number,
        **site,
    )


def test_a_round_on_records_changed_during_the_run_is_refused(tmp_path: Path) -> None:
    # Before: a train file changed mid-run was read and dealt out again, and
    # the client trained on records its ledger was not charged for (another
    # client's among them), with a warning in the worker's log only.
    _write_sites(tmp_path, rows=30)
    run = _settings(tmp_path, "privacy.target_delta=1e-3")
    weights = _first_weights(run)

    def round_of(number: int, **site: Any) -> Any:
        return _round(run, number, weights=weights, **site)

    assert round_of(1).weights is not None
    assert round_of(2).weights is not None  # the same records: it goes on
    _write_sites(tmp_path, rows=31)  # one record more in each file, mid-run
    ledger_before = client_ledger_path(run.run_dir, 0).read_bytes()
    with pytest.raises(FedmodelError) as refused:
        round_of(3)
    message = str(refused.value)
    assert "client 0's training records are not the ones its privacy ledger" in message
    assert "the task's data changed during the run" in message
    assert "Restore the data the run began with" in message
    assert client_ledger_path(run.run_dir, 0).read_bytes() == ledger_before
    # A site's file may change between federations: its ledger counts on.
    site_dir = tmp_path / "site-state"
    site_dir.mkdir()
    site_dir.joinpath(LEDGER_FILE).write_bytes(ledger_before)
    train, _, labels = load_client_data(run, 0)
    outcome = round_of(
        3, state_dir=site_dir, records=RoundRecords(split=train, label_names=labels)
    )
    assert outcome.weights is not None
    assert len(read_record(site_dir / LEDGER_FILE).rounds) == 3


@pytest.mark.parametrize("mode", ["dpsgd", "central", "off"])
def test_a_first_round_on_a_file_changed_since_the_start_is_refused(
    tmp_path: Path, mode: str
) -> None:
    # Before: a client with no ledger yet when a train file changed (first
    # chosen after the edit) trained on the records dealt out again, and its
    # new ledger counted them: nothing noticed.
    files = _write_sites(tmp_path, rows=30)
    run = _settings(tmp_path, f"privacy={mode}", "privacy.target_delta=1e-3")
    Path(run.run_dir).mkdir()
    record_task_files(Path(run.run_dir), run)  # the server, before round 1
    weights = _first_weights(run)
    assert _round(run, 1, weights=weights, client_id=1).weights is not None
    with Path(files[1]).open("a") as site:  # a record more, mid-run
        site.write("a late note,yes\n")
    with pytest.raises(FedmodelError) as refused:
        _round(run, 2, weights=weights, client_id=0)
    message = str(refused.value)
    assert f"client 0 read task.train_files {files[1]!r}, whose content" in message
    assert f"as its {TASK_FILE_HASHES} says" in message
    assert "the task's data changed during the run" in message
    assert "Restore the data the run began with" in message
    assert not simulated_client_dir(run.run_dir, 0).exists()  # nothing charged
    # A deployed site's own file may change between federations: it trains.
    train, _, labels = load_client_data(run, 0)
    site_dir = tmp_path / "site-state"
    outcome = _round(
        run,
        2,
        weights=weights,
        state_dir=site_dir,
        records=RoundRecords(split=train, label_names=labels),
    )
    assert outcome.weights is not None
    # A run folder written before the record was kept goes on, as a resume does.
    (Path(run.run_dir) / TASK_FILE_HASHES).unlink()
    assert _round(run, 2, weights=weights, client_id=0).weights is not None


def _charged_site_run(tmp_path: Path) -> list[str]:
    """A one-round run over one file per site, every client's ledger charged."""
    files = _write_sites(tmp_path, rows=30)
    run = _settings(tmp_path, partition="natural")
    for client in range(run.num_clients):
        train, _, _ = load_client_data(run, client)
        charge_client_ledger(tmp_path / "run", client, train)
    save_checkpoint(
        tmp_path / "run",
        Checkpoint(round=1, weights={}, label_names=("no", "yes")),
    )
    return files


def test_a_changed_site_file_is_named(tmp_path: Path) -> None:
    # Before: "client 1's training records are not the ones ..." and "the
    # task's data changed", naming no file, where each client is one file.
    files = _charged_site_run(tmp_path)
    Path(files[1]).write_text("text,label\nanother note,yes\nmore,no\n")
    _partitioned_task.cache_clear()  # a resume is a new process
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(_settings(tmp_path, "resume=true", partition="natural"))
    assert f"The task's data, task.train_files[1] {files[1]}, changed" in str(
        refused.value
    )


def test_a_label_added_at_one_site_is_named_as_such(tmp_path: Path) -> None:
    # Before: client 0, whose file did not change, was named as holding other
    # records: the new label "maybe" moved every label id after it.
    files = _charged_site_run(tmp_path)
    with Path(files[1]).open("a") as site:
        site.write("a new kind of note,maybe\n")
    _partitioned_task.cache_clear()
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(_settings(tmp_path, "resume=true", partition="natural"))
    assert str(refused.value) == (
        f"resume=true in {tmp_path / 'run'}: the task's files now give the labels "
        "['maybe', 'no', 'yes'], the run's were ['no', 'yes'] (added: ['maybe'], "
        "gone: []), so records may carry other label ids than the clients' "
        "privacy ledgers were charged for, and the checkpoint's head scores "
        "other labels. Restore the files the run began with, or start a new run "
        "in a folder of its own"
    )


def test_a_run_begun_under_the_text_label_order_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    # Labels 1..11: as text, "10" and "11" came before "2", so a run begun
    # then charged its ledgers for the same records under other label ids.
    names = [str(n) for n in range(1, 12)]
    for site in range(2):
        lines = [f"site {site} note {i},{names[i % 11]}" for i in range(33)]
        (tmp_path / f"site{site}.csv").write_text(
            "text,label\n" + "\n".join(lines) + "\n"
        )
    run = _settings(tmp_path, test_labels=("1", "2"))
    text_id = {name: i for i, name in enumerate(sorted(names))}
    for client in range(run.num_clients):
        train, _, label_names = load_client_data(run, client)
        assert label_names == tuple(names)  # ordered by value now
        then = train.map(lambda r: {"label": text_id[names[r["label"]]]})
        charge_client_ledger(tmp_path / "run", client, then)
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(
            _settings(tmp_path, "resume=true", test_labels=("1", "2"))
        )
    message = str(refused.value)
    assert "client 0's training records are the ones its privacy ledger" in message
    assert "whole-number labels are ordered by value now" in message
    assert "The task's data changed" not in message


def test_a_plan_too_long_for_prv_stops_before_round_one(tmp_path: Path) -> None:
    # Each client refused it only in its first round, after the federation
    # had started; `privacy-plan` refuses the same plan.
    _write_sites(tmp_path, rows=30)
    with pytest.raises(FedmodelError, match="more than the 100000 the prv") as info:
        check_simulated_clients(_settings(tmp_path, "num_rounds=100000000"))
    assert "client 0: 100000000 rounds" in str(info.value)
    check_simulated_clients(
        _settings(tmp_path, "num_rounds=100000000", "privacy.accountant=rdp")
    )


def _charged_run(tmp_path: Path) -> Path:
    """A run folder after round 1: both clients' ledgers and the checkpoint.

    The checkpoint records what each ledger holds: 2 steps and its epsilon.
    """
    _write_sites(tmp_path, rows=30)
    run_dir = tmp_path / "run"
    run = _settings(tmp_path)
    for client in range(run.num_clients):
        train, _, _ = load_client_data(run, client)
        charge_client_ledger(run_dir, client, train)
    figures = {
        client: held_figures(simulated_client_dir(run_dir, client))
        for client in range(run.num_clients)
    }
    save_checkpoint(run_dir, Checkpoint(round=1, weights={}, client_figures=figures))
    return run_dir


def _charged_epsilon(run_dir: Path, client: int) -> float:
    """The epsilon client `client`'s ledger in `run_dir` holds."""
    return float(client_ledger(run_dir, client)["rounds"][-1]["epsilon"])


def test_a_resume_whose_client_lost_its_ledger_stops_before_any_round(
    tmp_path: Path,
) -> None:
    run_dir = _charged_run(tmp_path)
    resumed = _settings(tmp_path, "resume=true")
    check_simulated_clients(resumed)  # every ledger as charged: it goes on
    ledger = client_ledger_path(run_dir, 0)
    charged = _charged_epsilon(run_dir, 0)
    ledger.unlink()  # the client's state deleted
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(resumed)
    assert str(refused.value) == (
        f"resume=true in {run_dir}: client 0's privacy ledger {ledger} does not "
        f"exist, but the run's checkpoint recorded 2 steps (epsilon "
        f"{decimals_up(charged, 4)}) "
        "charged to it: resumed, the client would train and send its update from "
        "a ledger that does not count what it already released. Restore the "
        "client's ledger, or start a new run in a folder of its own"
    )
    assert not ledger.exists()  # refused before the client opened a new one
    check_simulated_clients(_settings(tmp_path))  # not a resume
    check_simulated_clients(_settings(tmp_path, "resume=true", "privacy=off"))


def test_no_checkpoint_to_compare_goes_on(tmp_path: Path) -> None:
    run_dir = _charged_run(tmp_path)
    resumed = _settings(tmp_path, "resume=true")
    ledger = client_ledger_path(run_dir, 0)
    kept = ledger.read_bytes()
    ledger.unlink()
    with pytest.raises(FedmodelError, match="does not exist"):
        check_simulated_clients(resumed)
    state = run_dir / CHECKPOINT_DIR / CHECKPOINT_FILE
    recorded = state.read_bytes()
    state.write_bytes(b"not a checkpoint")  # unreadable: nothing to compare
    check_simulated_clients(resumed)
    state.unlink()  # absent: nothing to compare either
    check_simulated_clients(resumed)
    state.write_bytes(recorded)
    ledger.write_bytes(kept)
    check_simulated_clients(resumed)


def test_a_simulated_clients_ledger_reset_during_the_run_is_refused(
    tmp_path: Path,
) -> None:
    # A site resets its budget for new data; a simulated client's records are
    # the run's own, so a new budget would count them again from 0 and the
    # summary would state less than they spent.
    run_dir = _charged_run(tmp_path)
    resumed = _settings(tmp_path, "resume=true")
    state_dir = simulated_client_dir(run_dir, 1)
    _, archived = archive_ledger(state_dir)  # `fedmodel ledger reset`
    # With the checkpoint, and without one: the raised reset count would pass
    # the server's rule, and without a checkpoint there is nothing to compare.
    for _ in range(2):
        with pytest.raises(FedmodelError) as refused:
            check_simulated_clients(resumed)
        assert str(refused.value) == (
            f"resume=true in {run_dir}: client 1's privacy ledger was reset during "
            f"the run ({archived} holds what it spent): a simulated client trains "
            "on the same records all run, so a new budget would not count what "
            f"they already released. Move {archived.name} back to "
            f"privacy_ledger.json in {state_dir} (if no round charged it since), "
            "or start a new run in a folder of its own"
        )
        (run_dir / CHECKPOINT_DIR / CHECKPOINT_FILE).unlink(missing_ok=True)
    assert not client_ledger_path(run_dir, 1).exists()
    archived.rename(client_ledger_path(run_dir, 1))  # as the message says
    check_simulated_clients(resumed)


def test_clients_charged_for_a_round_the_run_did_not_keep_are_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A SIGTERM in round 3 of a TREC run: clients 0 and 1 had been charged for
    # it, and after the resume ran round 3 again they sat out round 6 with
    # "cannot take part", nothing saying why.
    run_dir = _charged_run(tmp_path)  # each ledger as the checkpoint recorded
    resumed = _settings(tmp_path, "resume=true")
    with caplog.at_level("WARNING", logger="fedmodel.client.record_check"):
        check_simulated_clients(resumed)
        assert not caplog.records
        train, _, _ = load_client_data(resumed, 1)
        charge_client_ledger(run_dir, 1, train)  # the cut round's charge
        check_simulated_clients(resumed, warn=False)  # simulate's first check
        assert not caplog.records
        check_simulated_clients(resumed)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "the privacy ledger of client 1 was charged for more steps than the "
        "run's checkpoint recorded: a round the run did not keep (one a stop cut "
        "short, or whose update the server did not take, after the ledger was "
        "charged) is run again and charged again, an over-count, never an "
        "under-count, so it may reach its target a round early and sit out the "
        "last round"
    )


def test_a_ledger_older_than_the_checkpoint_is_refused(tmp_path: Path) -> None:
    run_dir = _charged_run(tmp_path)  # each ledger holds 2 steps
    later = {"steps": 4.0, "epsilon": 2.856718, "ledger-resets": 0.0}
    save_checkpoint(
        run_dir,
        Checkpoint(round=2, weights={}, client_figures={0: later, 1: later}),
    )
    held = _charged_epsilon(run_dir, 0)
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(_settings(tmp_path, "resume=true"))
    assert (
        f"client 0's privacy ledger {client_ledger_path(run_dir, 0)} holds 2 steps "
        f"(epsilon {decimals_up(held, 4)}), but the run's checkpoint recorded 4 "
        "steps (epsilon 2.8568)"  # 2.856718 rounded up, not to the nearest
    ) in str(refused.value)


def test_a_ledger_with_the_steps_but_less_epsilon_is_refused(tmp_path: Path) -> None:
    # The server's rule: epsilon going back is lost charges, as steps are
    # (a ledger replaced by one charged the same steps at less noise, say).
    run_dir = _charged_run(tmp_path)
    held = _charged_epsilon(run_dir, 0)
    figures = recorded_client_figures(run_dir)
    figures[0] = {**figures[0], "epsilon": held + 0.5}
    save_checkpoint(run_dir, Checkpoint(round=1, weights={}, client_figures=figures))
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(_settings(tmp_path, "resume=true"))
    assert (
        f"client 0's privacy ledger {client_ledger_path(run_dir, 0)} holds 2 steps "
        f"(epsilon {decimals_up(held, 4)}), but the run's checkpoint recorded 2 "
        f"steps (epsilon {decimals_up(held + 0.5, 4)})"
    ) in str(refused.value)


def test_a_resume_reads_each_clients_ledger_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One read serves both checks: the steps recorded and the records charged.
    run_dir = _charged_run(tmp_path)
    reads: list[Path] = []

    def counted(path: Path) -> LedgerRecord:
        reads.append(path)
        return read_record(path)

    monkeypatch.setattr(record_check, "read_record", counted)
    check_simulated_clients(_settings(tmp_path, "resume=true"))
    assert sorted(reads) == [client_ledger_path(run_dir, c) for c in (0, 1)]


def test_a_resume_whose_client_level_ledger_went_back_is_refused(
    tmp_path: Path,
) -> None:
    # privacy=central: the server's one ledger is the run's whole budget, and
    # the checkpoint records its figures for every client. Deleted, or
    # replaced by an older copy, it would start that budget again.
    _write_sites(tmp_path, rows=30)
    central = ("privacy=central", "privacy.accountant=rdp")
    settings = _settings(tmp_path, *central)
    run_dir = Path(settings.run_dir)
    ledger = PrivacyLedger.open(
        run_dir / CENTRAL_LEDGER_FILE,
        client_id=CLIENT_LEVEL_ID,
        plan=plan_client_level(settings),
        data_fingerprint="2-clients",
    )
    ledger.charge(round_number=1, steps=1)
    after_one = ledger.path.read_bytes()
    ledger.charge(round_number=2, steps=1)
    figures = ledger.reported_figures()
    save_checkpoint(
        run_dir,
        Checkpoint(round=2, weights={}, client_figures={0: figures, 1: figures}),
    )
    resumed = _settings(tmp_path, *central, "resume=true")
    check_simulated_clients(resumed)  # the ledger as charged: it goes on
    ledger.path.write_bytes(after_one)
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(resumed)
    assert str(refused.value) == (
        f"resume=true in {run_dir}: the client-level privacy ledger "
        f"{ledger.path} holds 1 round (epsilon "
        f"{decimals_up(read_record(ledger.path).rounds[-1].epsilon, 4)}), but the "
        f"run's checkpoint recorded 2 rounds (epsilon "
        f"{decimals_up(figures['epsilon'], 4)}) charged "
        "to it: resumed, the server would noise and release further rounds "
        "from a ledger that does not count what it already released. Restore "
        "the ledger, or start a new run in a folder of its own"
    )
    ledger.path.unlink()
    with pytest.raises(FedmodelError, match="ledger .* does not exist, but the"):
        check_simulated_clients(resumed)
    # The run's one budget is never reset: a file in the run folder named as a
    # site's archived ledger raised the reset count the rule read, and the
    # resume then opened an empty ledger and spent the budget again.
    (run_dir / "privacy_ledger.reset-20260101T000000.000000Z.json").write_text("{}")
    with pytest.raises(FedmodelError, match="ledger .* does not exist, but the"):
        check_simulated_clients(resumed)


@pytest.mark.parametrize("damage", ["unreadable", "edited", "folder"])
@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_resume_whose_clients_ledger_is_unusable_stops_before_any_round(
    tmp_path: Path, damage: str, checkpoint: bool
) -> None:
    # Before: left to client 1, which failed its round only after client 0
    # had trained in it and been charged for it.
    run_dir = _charged_run(tmp_path)
    if not checkpoint:  # nothing to compare with: the ledger is still read
        (run_dir / CHECKPOINT_DIR / CHECKPOINT_FILE).unlink()
    ledger = client_ledger_path(run_dir, 1)
    if damage == "unreadable":
        ledger.write_text('{"format": "fedmodel-privacy-ledger", "vers')
    elif damage == "edited":  # a noise multiplier raised: the history spends less
        stored = client_ledger(run_dir, 1)
        edited = [[4.0, rate, steps] for _, rate, steps in stored["history"]]
        ledger.write_text(json.dumps({**stored, "history": edited}))
    else:  # a folder where the file should be
        ledger.unlink()
        ledger.mkdir()
    with pytest.raises(FedmodelError) as at_the_client:
        PrivacyLedger.open(
            ledger, client_id="1", plan=charged_plan(), data_fingerprint="x"
        )
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(_settings(tmp_path, "resume=true"))
    # As the client answers it in a run: `fedmodel ledger reset`, a site's way
    # out, refuses a simulated client's folder, whose way out is a new run.
    assert isinstance(at_the_client.value, LedgerRefusal)
    assert str(refused.value) == str(at_the_client.value.in_a_run())
    assert "ledger reset" not in str(refused.value)
    assert str(refused.value).endswith(
        "or start a new run in a folder of its own for new budgets"
    )
    assert f"privacy ledger {ledger} is unusable: " in str(refused.value)
    check_simulated_clients(_settings(tmp_path))  # not a resume


def test_under_flwr_run_the_server_checks_simulated_clients_before_round_one(
    tmp_path: Path,
) -> None:
    # `fedmodel simulate` checks its clients before Flower starts; under
    # `flwr run` nothing did, so each client refused its plan only in round 1.
    overrides = [*FAKE_GRID_RUN, "distill=off", "privacy.target_delta=0.5"]
    context = flwr_run_context(overrides, tmp_path)
    grid = FakeGrid(2)
    with logging_restored(), pytest.raises(FedmodelError, match="not below 1/n"):
        server_app.main(grid, context)
    assert grid.sent == []


def test_under_flwr_run_the_server_checks_the_run_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ServerApp checked the folder before its clients, and again as it
    # prepared the folder: every `flwr run` read the folder's config twice.
    checked: list[Path] = []

    def count(run_dir: Path, settings: RunSettings) -> None:
        checked.append(run_dir)
        check_run_folder(run_dir, settings)

    for module in (server_app, server_setup):
        monkeypatch.setattr(module, "check_run_folder", count, raising=False)
    overrides = [*FAKE_GRID_RUN, "distill=off", "privacy=off", "num_rounds=1"]
    context = flwr_run_context(overrides, tmp_path)
    with logging_restored():
        server_app.main(FakeGrid(2), context)
    assert checked == [tmp_path]
    # The check still refuses: a second run in the folder that holds one.
    with logging_restored(), pytest.raises(FedmodelError, match="already holds"):
        server_app.main(FakeGrid(2), context)


def test_under_flwr_run_a_node_count_not_num_clients_is_named_before_round_one(
    tmp_path: Path,
) -> None:
    # It named `num-supernodes=2` with no word of where `flwr run` takes it.
    context = flwr_run_context([*FAKE_GRID_RUN, "distill=off"], tmp_path)
    grid = FakeGrid(3)
    with logging_restored(), pytest.raises(FedmodelError) as refused:
        server_app.main(grid, context)
    assert str(refused.value) == (
        "the simulation has 3 SuperNodes but num_clients is 2, one SuperNode per "
        'client: start `flwr run` with --federation-config "num-supernodes=2", '
        "or add num_clients=3 to its run-config's overrides"
    )
    assert grid.sent == []
