"""The audit's run and record checks: what it cannot audit is refused clearly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml

from fedmodel.cli.main import run_command
from fedmodel.config import compose_config, settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.research.audit_records import charged_ledger, require_held_out
from fedmodel.research.finished_run import load_run
from fedmodel.run import folder_check
from fedmodel.run.layout import (
    AUDIT_FILE,
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    RESOLVED_CONFIG,
    STUDENT_DIR,
    SUMMARY_FILE,
    TEACHER_DIR,
)
from fedmodel.run.summary import charged_epsilon
from tests.conftest import charge_client_ledger


def test_a_run_that_trained_on_every_record_is_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    # task.val_fraction is 0 by default: the client holds no non-members.
    empty = datasets.Dataset.from_dict({"text": [], "label": []})
    with pytest.raises(FedmodelError) as raised:
        require_held_out(empty, client=0, run_dir=tmp_path, val_fraction=0.0)
    message = str(raised.value)
    assert "holds 0 held-out records (task.val_fraction 0, the default" in message
    assert "task.val_fraction above 0" in message and str(tmp_path) in message
    two = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    require_held_out(two, client=0, run_dir=tmp_path, val_fraction=0.1)


def test_a_fraction_that_held_out_too_few_is_named_as_the_run_had_it(
    tmp_path: Path,
) -> None:
    # Before: "with task.val_fraction 0, the default", whatever the run had.
    one = datasets.Dataset.from_dict({"text": ["a"], "label": [0]})
    with pytest.raises(FedmodelError) as raised:
        require_held_out(one, client=1, run_dir=tmp_path, val_fraction=0.05)
    message = str(raised.value)
    assert "the default" not in message
    assert (
        f"client 1 of {tmp_path} holds 1 held-out record (task.val_fraction 0.05 "
        "of its records); the audit compares members with at least 2 held-out "
        "records of the same client: rerun with a task.val_fraction above 0.05"
    ) in message


@pytest.mark.parametrize("change", ["key added since", "key removed since"])
def test_a_run_whose_config_this_version_cannot_rebuild_is_refused_naming_the_file(
    tmp_path: Path, change: str
) -> None:
    # A run folder from a version with one key fewer, or one more, than today's.
    raw = compose_config(["model=tiny"])
    if change == "key added since":
        del raw["distill"]["epochs"]
        named = "distill.epochs"
    else:
        raw["distill"]["retired_key"] = 1
        named = "retired_key"
    (tmp_path / RESOLVED_CONFIG).write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({}), encoding="utf-8")
    (tmp_path / TEACHER_DIR).mkdir()
    (tmp_path / TEACHER_DIR / "config.json").write_text("{}", encoding="utf-8")
    before = (tmp_path / RESOLVED_CONFIG).read_bytes()
    with pytest.raises(FedmodelError) as raised:
        load_run(tmp_path)
    message = str(raised.value)
    assert str(tmp_path / RESOLVED_CONFIG) in message
    assert named in message and "another fedmodel version" in message
    assert (tmp_path / RESOLVED_CONFIG).read_bytes() == before


def _finished_run(run: Path) -> None:
    """The files `fedmodel audit` reads from a finished run's folder."""
    (run / TEACHER_DIR).mkdir(parents=True)
    (run / TEACHER_DIR / "config.json").write_text("{}", encoding="utf-8")
    raw = compose_config(["model=tiny"])
    (run / RESOLVED_CONFIG).write_text(yaml.safe_dump(raw), encoding="utf-8")
    (run / SUMMARY_FILE).write_text(json.dumps({}), encoding="utf-8")


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("no folder", "run folder {run} does not exist: give the folder of a"),
        ("a file", "{run} is a file, not a run folder: give the folder of a finished"),
        ("no config", "{run} has no resolved_config.yaml: give the folder of a"),
        ("no summary", "{run} has no summary.json: give the folder of a finished"),
        ("no model", "{run} has no model/config.json: give the folder of a finished"),
        (
            "broken config",
            "{run}/resolved_config.yaml cannot be read at line 2, column 1",
        ),
        (
            "config not a mapping",
            "{run}/resolved_config.yaml does not hold a mapping: restore it",
        ),
        (
            "broken summary",
            "{run}/summary.json cannot be read at line 1, column 2: "
            "Expecting property name",
        ),
        # Before: AttributeError: 'list' object has no attribute 'get'.
        (
            "summary not a mapping",
            "{run}/summary.json does not hold a mapping: restore it",
        ),
    ],
)
def test_a_missing_or_broken_run_folder_is_one_clear_error(
    tmp_path: Path, fault: str, said: str
) -> None:
    run = tmp_path / "run"
    if fault == "a file":
        run.write_text("", encoding="utf-8")
    elif fault != "no folder":
        _finished_run(run)
    removed = {
        "no config": RESOLVED_CONFIG,
        "no summary": SUMMARY_FILE,
        "no model": f"{TEACHER_DIR}/config.json",
    }
    if fault in removed:
        (run / removed[fault]).unlink()
    written = {
        "broken config": (RESOLVED_CONFIG, "task: [bank\n"),
        "config not a mapping": (RESOLVED_CONFIG, "- task\n"),
        "broken summary": (SUMMARY_FILE, "{"),
        "summary not a mapping": (SUMMARY_FILE, "[]"),
    }
    if fault in written:
        name, text = written[fault]
        (run / name).write_text(text, encoding="utf-8")
    with pytest.raises(FedmodelError) as raised:
        load_run(run)
    assert str(raised.value).startswith(said.format(run=run))


def test_an_interrupted_run_is_named_with_the_command_that_finishes_it(
    tmp_path: Path,
) -> None:
    # Before: only "give the folder of a finished run", as for any folder.
    _finished_run(tmp_path)
    (tmp_path / SUMMARY_FILE).unlink()
    (tmp_path / CHECKPOINT_DIR).mkdir()
    (tmp_path / CHECKPOINT_DIR / CHECKPOINT_FILE).write_bytes(b"")
    with pytest.raises(FedmodelError) as raised:
        load_run(tmp_path)
    assert str(raised.value).endswith(
        "this one was stopped before it finished: "
        f"`fedmodel resume {tmp_path}` finishes it"
    )


@pytest.mark.parametrize("inside", [TEACHER_DIR, STUDENT_DIR])
def test_a_model_folder_is_told_to_give_its_run_folder(
    tmp_path: Path, inside: str
) -> None:
    # Before: "has no resolved_config.yaml", as for a folder that is no run.
    _finished_run(tmp_path)
    (tmp_path / inside).mkdir(exist_ok=True)
    (tmp_path / inside / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FedmodelError) as raised:
        load_run(tmp_path / inside)
    assert str(raised.value) == (
        f"{tmp_path / inside} is a model folder inside the run folder {tmp_path}: "
        "give the run folder"
    )


def test_a_sweep_folder_is_told_to_give_a_jobs_folder(tmp_path: Path) -> None:
    # Before: "has no resolved_config.yaml: give the folder of a finished
    # `fedmodel simulate` run", though the folder holds such runs.
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n", encoding="utf-8")
    for job in ("1", "0"):
        _finished_run(tmp_path / job)
    with pytest.raises(FedmodelError) as raised:
        load_run(tmp_path)
    assert str(raised.value) == (
        f"{tmp_path} is a --multirun sweep's folder (multirun.yaml), one run per "
        f"job: give the folder of the job to audit, e.g. {tmp_path / '0'}"
    )


def test_a_run_folder_that_cannot_be_written_is_refused_before_the_audit(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: the audit ran to its end, then writing audit.json raised a
    # PermissionError traceback and its figures were never printed.
    _finished_run(tmp_path)

    def read_only(**_: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Root writes into a read-only folder anyway, so the refusal is staged.
    monkeypatch.setattr(folder_check.tempfile, "TemporaryFile", read_only)
    assert run_command(["audit", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel audit: error: RUN_DIR: the run folder, where audit.json is "
        f"written, {tmp_path} cannot be used: {tmp_path} cannot be written "
        "(Permission denied); fix its permissions, or audit a copy of the run "
        "folder you can write"
    )
    assert not (tmp_path / AUDIT_FILE).exists()


@pytest.mark.parametrize("client", ["4", "-1"])
def test_a_client_the_run_did_not_have_is_one_clear_error(
    tmp_path: Path, client: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, the run's records were loaded first and the error named
    # `client_id`, not the option, and not the run.
    _finished_run(tmp_path)
    assert run_command(["audit", str(tmp_path), "--client", client]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel audit: error: --client {client} is not a client of {tmp_path}: "
        "it ran 4 clients, numbered 0 to 3"
    )


def test_the_claim_is_the_largest_of_reported_and_charged() -> None:
    # The audit claims what the run's statement takes (`charged_epsilon`).
    assert charged_epsilon({"epsilon": 0.9, "ledger_epsilon": 1.2}) == 1.2
    # Every update rejected: nothing reported, the ledger still charged.
    assert charged_epsilon({"epsilon": None, "ledger_epsilon": 0.7}) == 0.7
    # A site reset its ledger during the run: it reported more before.
    assert charged_epsilon({"epsilon": 0.4, "epsilon_before_reset": 2.5}) == 2.5
    assert charged_epsilon({"epsilon": None}) is None  # privacy=off


def test_records_the_ledger_did_not_cover_are_not_audited(tmp_path: Path) -> None:
    train = datasets.Dataset.from_dict({"text": ["a b", "c d"], "label": [0, 1]})
    assert charged_ledger(tmp_path, 0, train) is None  # no ledger: not checked
    charge_client_ledger(tmp_path, 0, train)
    record = charged_ledger(tmp_path, 0, train)
    assert record is not None and record.delta == 1e-5
    changed = train.map(lambda row: {"text": row["text"] + " x"})
    with pytest.raises(FedmodelError, match="not the ones its ledger .* was charged"):
        charged_ledger(tmp_path, 0, changed)


def _files_run(
    run: Path, began: Path, *, stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished files run's folder, started in `began`, its paths `stored` so."""
    (began / "sites").mkdir(parents=True)
    for name in ("sites/a.csv", "sites/b.csv", "test.csv"):
        (began / name).write_text("text,label\nx,y\n", encoding="utf-8")
    overrides = [
        "task=files",
        "task.train_files=[sites/a.csv,sites/b.csv]",
        "task.test_file=test.csv",
        "model=tiny",
    ]
    raw: dict[str, Any] = compose_config(overrides)
    if stored == "absolute":  # as this fedmodel writes it
        monkeypatch.chdir(began)
        raw = dataclasses.asdict(settings_from_dict(raw))
    (run / TEACHER_DIR).mkdir(parents=True)
    (run / TEACHER_DIR / "config.json").write_text("{}", encoding="utf-8")
    (run / RESOLVED_CONFIG).write_text(yaml.safe_dump(raw), encoding="utf-8")
    (run / SUMMARY_FILE).write_text(json.dumps({}), encoding="utf-8")


def _record_start(run: Path, began: Path) -> None:
    (run / ".hydra").mkdir()
    hydra = {"hydra": {"runtime": {"cwd": str(began)}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra), encoding="utf-8")


@pytest.mark.parametrize("stored", ["absolute", "relative, start recorded"])
def test_a_files_run_is_audited_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stored: str
) -> None:
    # This fedmodel stores the files' paths absolute; an older one stored them
    # as typed, relative to the folder the run began in, which Hydra recorded.
    began, elsewhere, run = tmp_path / "data", tmp_path / "elsewhere", tmp_path / "run"
    elsewhere.mkdir()
    _files_run(run, began, stored=stored.split(",")[0], monkeypatch=monkeypatch)
    if stored != "absolute":
        _record_start(run, began)
    monkeypatch.chdir(elsewhere)
    settings, _ = load_run(run)
    assert settings.task.train_files == [
        str(began / "sites" / "a.csv"),
        str(began / "sites" / "b.csv"),
    ]
    assert settings.task.test_file == str(began / "test.csv")


def test_an_older_run_that_does_not_record_its_start_names_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An older run's relative paths, and no .hydra/hydra.yaml (a flwr run
    # ServerApp's folder): they can only be read from where it began.
    began, elsewhere, run = tmp_path / "data", tmp_path / "elsewhere", tmp_path / "run"
    elsewhere.mkdir()
    _files_run(run, began, stored="relative", monkeypatch=monkeypatch)
    monkeypatch.chdir(elsewhere)
    with pytest.raises(FedmodelError) as raised:
        load_run(run)
    message = str(raised.value)
    assert "task.train_files[0]='sites/a.csv'" in message
    assert "does not record which" in message and str(elsewhere) in message
    assert "run `fedmodel audit` from that folder" in message
    monkeypatch.chdir(began)
    settings, _ = load_run(run)
    assert settings.task.train_files[0] == str(began / "sites" / "a.csv")


def test_a_client_that_never_trained_is_refused_naming_those_that_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Client 2 was never sampled (strategy.fraction_train below 1): before,
    # its records were attacked as members, and the audit of this DP run said
    # "claimed: no DP (privacy=off), epsilon unbounded".
    _finished_run(tmp_path)
    rows = [{"client_id": 0, "epsilon": 7.99}, {"client_id": 1, "epsilon": 7.99}]
    summary = {"clients": rows, "privacy_guarantee": {"level": "record"}}
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(summary), encoding="utf-8")
    assert run_command(["audit", str(tmp_path), "--client", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel audit: error: client 2 of {tmp_path} never trained: its "
        "summary.json holds no figures of it (it was never sampled, or none of "
        "its updates came back), so none of its records is a member of the "
        "model; audit a client that trained (--client: 0, 1)"
    )
