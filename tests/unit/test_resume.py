"""`fedmodel resume RUN_DIR`: the run's own overrides, read from its folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedmodel.cli.hydra_files import named_run_dir, run_dir_override
from fedmodel.cli.main import run_command
from fedmodel.cli.resume import resume_argv
from fedmodel.cli.resume_finished import check_rounds_left, finished_sweep_job
from fedmodel.cli.simulate import run_simulate
from fedmodel.config import compose_config, settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.federation.server_setup import write_resolved_config
from fedmodel.run import tracking
from fedmodel.run.tracking import TRACKED_KEY
from tests.integration.loopback import free_port
from tests.unit.cli_probe import probed
from tests.unit.test_model_card import RECORD, card_summary

RUN = ["model=tiny", "num_clients=2", "num_rounds=2"]
# Folder names that hold what Hydra's override grammar (or a shell) reads.
HYDRA_SYNTAX_FOLDERS = ["a,b[1]", "it's x=1", "a,b\\", "a\\'b", "ü"]


def _run_folder(run: Path, overrides: list[str], *, began: Path | None = None) -> Path:
    """What `fedmodel simulate OVERRIDES` leaves: Hydra's files, the config."""
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = compose_config(overrides)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if began is not None:
        hydra = {"hydra": {"runtime": {"cwd": str(began)}}}
        (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    write_resolved_config(run, settings_from_dict(config))
    return run


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code = run_command(["resume", *args])
    except SystemExit as stopped:  # refused inside the Hydra app, which exits
        code = stopped.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmodel resume: error: ") and len(err.splitlines()) == 1
    return err


def test_the_stored_overrides_are_run_with_resume_and_the_folder(
    tmp_path: Path,
) -> None:
    # A run resumed before keeps resume=true among its overrides; a folder
    # option in them (as a user may have typed it) names another folder.
    run = _run_folder(tmp_path / "run", RUN)
    stored = [*RUN, "resume=true", "+hydra.run.dir=elsewhere"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(stored))
    assert resume_argv(run, ["distill=off"]) == [
        *RUN,
        "resume=true",
        f"hydra.run.dir={run}",
        "distill=off",
    ]


def test_the_starts_own_hydra_settings_are_replayed_but_its_launch(
    tmp_path: Path,
) -> None:
    # Hydra keeps them in hydra.yaml; a sweep job's mode and sweep folder
    # say how it was launched, and its old folder is named again.
    run = _run_folder(tmp_path / "run", RUN)
    launch = ["hydra.mode=MULTIRUN", "hydra.sweep.dir=sweep", "hydra.run.dir=old"]
    own = ["hydra.job.chdir=true", "hydra/help=default", *launch]
    hydra = {"hydra": {"overrides": {"hydra": own, "task": RUN}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    assert resume_argv(run, ["hydra.job.chdir=false"]) == [
        *RUN,
        "hydra/help=default",
        "resume=true",
        f"hydra.run.dir={run}",
        "hydra.job.chdir=false",
    ]
    (run / ".hydra" / "hydra.yaml").write_text("hydra: {overrides: {hydra: 3}}\n")
    assert resume_argv(run, []) == [*RUN, "resume=true", f"hydra.run.dir={run}"]


def test_no_run_dir_asks_for_it_alone(capsys: pytest.CaptureFixture[str]) -> None:
    # Before: "the following arguments are required: RUN_DIR, overrides",
    # though the overrides are optional.
    with pytest.raises(SystemExit) as done:
        run_command(["resume"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "fedmodel resume: error: the following arguments are required: RUN_DIR"
    )


def test_an_extra_override_with_spaces_for_its_equals_sign_says_how_to_write_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_folder(tmp_path / "run", RUN)
    err = _refused([str(run), "num_rounds = 3"], capsys)
    assert err.endswith("with no space around the =; write num_rounds=3")


def test_a_missing_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused([str(tmp_path / "nope")], capsys)
    assert f"{tmp_path / 'nope'} does not exist" in err


@pytest.mark.parametrize("missing", [".hydra/overrides.yaml", "resolved_config.yaml"])
def test_a_folder_without_a_runs_files_is_not_a_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str
) -> None:
    run = _run_folder(tmp_path / "run", RUN)
    (run / missing).unlink()
    err = _refused([str(run)], capsys)
    assert f"{run} is not a run folder" in err and f"(no {missing})" in err
    # A run started with hydra.output_subdir=null kept no overrides.
    kept_none = f"OVERRIDES resume=true hydra.run.dir={run}`"
    assert (kept_none in err) == (missing == ".hydra/overrides.yaml")


@pytest.mark.parametrize("prefix", ["", "+"])
def test_another_run_folder_among_the_overrides_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: str
) -> None:
    # Before: Hydra took the later hydra.run.dir, so `fedmodel resume RUN
    # hydra.run.dir=OTHER` trained a whole new run in OTHER on the same
    # records, with new ledgers, exit 0, and RUN was never continued.
    run = _run_folder(tmp_path / "run", RUN, began=tmp_path)
    other = tmp_path / "other"
    err = _refused([str(run), f"{prefix}hydra.run.dir={other}"], capsys)
    assert f"hydra.run.dir={other}: fedmodel resume continues the run in {run}" in err
    assert not other.exists()
    # Naming the run's own folder again is no change; a relative one is read
    # from the folder the run began in, where the resume runs.
    for named in (str(run), "run", "x/../run"):
        argv = resume_argv(run, [f"hydra.run.dir={named}"])
        assert named_run_dir(argv) == Path(named)


def test_a_sweeps_folder_names_one_of_its_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        _run_folder(sweep / job, [*RUN, f"seed={job}"])
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    err = _refused([str(sweep)], capsys)
    assert f"{sweep} is a --multirun sweep's folder" in err
    assert f"name the folder of the job to continue, e.g. {sweep / '0'}" in err


def _summary(run: Path, status: str = "ok", *, spent: bool = False) -> None:
    clients = [{"client_id": i, "budget_exhausted": spent} for i in range(2)]
    summary: dict[str, Any] = {
        "status": status,
        "rounds": [{"round": 1}] if spent else [{"round": 1}, {"round": 2}],
        "clients": clients,
    }
    (run / "summary.json").write_text(json.dumps(summary))


def test_a_finished_run_has_nothing_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_folder(tmp_path / "run", RUN)
    _summary(run)
    err = _refused([str(run)], capsys)
    assert f"the run in {run} has finished" in err and "round 2 is done" in err
    with pytest.raises(FedmodelError, match="every client's budget is spent"):
        _summary(run, spent=True)
        check_rounds_left(run, resume_argv(run, []))


def test_a_run_with_too_few_clients_of_budget_left_has_nothing_to_resume(
    tmp_path: Path,
) -> None:
    # Round 1 of 2 left client 0 spent under min_replies=2: the run ended
    # "ok" (federation/budget_stop.py), and a resume would charge client 1
    # for a round that could not be kept.
    run = _run_folder(tmp_path / "run", [*RUN, "federation.min_replies=2"])
    summary = {
        "status": "ok",
        "rounds": [{"round": 1}],
        "clients": [
            {"client_id": 0, "budget_exhausted": True},
            {"client_id": 1, "budget_exhausted": False},
        ],
    }
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(FedmodelError) as refused:
        check_rounds_left(run, resume_argv(run, []))
    assert (
        "(summary.json: num_rounds=2, 1 of 2 clients has budget left, fewer than "
        "federation.min_replies=2; a lower one goes on with them): nothing to "
        "resume"
    ) in str(refused.value)
    check_rounds_left(run, resume_argv(run, ["federation.min_replies=1"]))


def test_a_finished_runs_num_rounds_given_as_a_word_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was read with int() before the settings were checked: a traceback.
    run = _run_folder(tmp_path / "run", RUN)
    _summary(run)
    err = _refused([str(run), "num_rounds=abc"], capsys)
    assert "config key 'num_rounds' must be an integer: 'abc'" in err


@pytest.mark.parametrize(
    ("finished", "extra", "said"),
    [
        (True, [], "has finished"),
        (True, ["nosuchkey=1"], "unknown config key 'nosuchkey'"),
        (False, ["privacy.target_epsilon=-1"], "must be a finite number > 0"),
    ],
)
def test_a_refused_resume_answers_before_torch_loads(
    tmp_path: Path, finished: bool, extra: list[str], said: str
) -> None:
    # These refusals read only the run folder and the config; they once waited
    # 7-12 s for torch and Opacus, which summary.json's reader and the
    # record check imported first.
    run = _run_folder(tmp_path / "run", RUN)
    if finished:
        _summary(run)
    result, done = probed("resume", str(run), *extra)
    assert result == {"code": 2, "heavy": []}, done.stderr[-2000:]
    assert said in done.stderr


def test_a_finished_run_that_lacks_its_model_cards_gets_them_from_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # fedmodel once wrote summary.json before the cards: a stop between the
    # two left model/ without README.md, and the resume refused the run as
    # finished, saying nothing of it. The summary describes those weights.
    run = _run_folder(tmp_path / "run", RUN)
    summary = {**card_summary(run, RECORD), "status": "ok", "final_accuracy": 0.9}
    (run / "summary.json").write_text(json.dumps(summary))
    err = _refused([str(run)], capsys)
    assert f"the run in {run} has finished" in err
    assert f"model cards {run / 'model' / 'README.md'} and " in err
    assert "were missing (left out by a stop as the run finished)" in err
    assert "over 10 rounds" in (run / "model" / "README.md").read_text()
    assert "epsilon at most 3" in (run / "student" / "README.md").read_text()
    # A resumed sweep's finished job, the same.
    (run / "student" / "README.md").unlink()
    settings = settings_from_dict({**compose_config(RUN), "run_dir": str(run)})
    assert finished_sweep_job(run, settings) == 0.9
    assert "was missing (left out by a stop" in capsys.readouterr().err
    assert "over 10 rounds" in (run / "student" / "README.md").read_text()
    # Weights exported after the summary may not be those it describes.
    (run / "model" / "README.md").unlink()
    later = (run / "summary.json").stat().st_mtime + 60
    os.utime(run / "model" / "config.json", (later, later))
    err = _refused([str(run)], capsys)
    assert f"{run / 'model'} has no model card (README.md) and was written" in err
    assert not (run / "model" / "README.md").exists()


def test_a_finished_run_a_stop_left_untracked_is_tracked_by_the_resume(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The ServerApp tracks a run after writing its summary: a stop between the
    # two left a finished run that no command would ever log to MLflow.
    tracked: list[Path] = []
    monkeypatch.setitem(
        tracking.TRACKERS, "mlflow", lambda _, run_dir: tracked.append(run_dir) or "7"
    )
    run = _run_folder(tmp_path / "run", [*RUN, "tracking=mlflow"])
    _summary(run)
    assert "has finished" in _refused([str(run)], capsys)
    assert tracked == [run]
    assert json.loads((run / "summary.json").read_text())[TRACKED_KEY] == "7"
    assert "has finished" in _refused([str(run)], capsys)  # tracked once
    # Untracked again: a resumed sweep's finished job, the same.
    summary = {"status": "ok", "rounds": [{"round": 2}], "final_accuracy": 0.9}
    (run / "summary.json").write_text(json.dumps(summary))
    config = compose_config([*RUN, "tracking=mlflow"])
    settings = settings_from_dict({**config, "run_dir": str(run)})
    assert finished_sweep_job(run, settings) == 0.9
    assert tracked == [run, run]


def test_an_unreachable_tracking_store_stops_the_resume_before_any_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The cards a stop left out were written before MLflow was asked, so the
    # refused resume had changed the run folder.
    (tmp_path / "a-file").write_text("")
    uri = (tmp_path / "a-file" / "mlruns").as_uri()
    run = _finished_untracked_run(tmp_path / "run", uri)
    before = _contents(run)
    err = _refused([str(run)], capsys)
    assert _contents(run) == before
    assert f"MLflow could not log {run} to {uri} (" in err
    assert f"(`fedmodel resume {run} tracking=none` once it has finished)" in err
    assert "has finished" in _refused([str(run), "tracking=none"], capsys)
    assert (run / "model" / "README.md").is_file()


@pytest.mark.usefixtures("no_proxy")
def test_a_finished_run_tracked_on_resume_asks_an_mlflow_server_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tracking a finished, untracked run went straight to MLflow, which
    # retried a server nothing answers at for minutes before refusing.
    uri = f"http://127.0.0.1:{free_port()}"
    run = _finished_untracked_run(tmp_path / "run", uri)
    before = _contents(run)
    err = _refused([str(run)], capsys)
    assert f"tracking.uri={uri!r}: nothing takes a connection" in err
    assert _contents(run) == before


def test_tracking_a_sweeps_finished_job_keeps_its_cards_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tracker's id was written into summary.json before the cards were
    # checked: a model folder exported after the summary then looked older
    # than it, and got a card from a summary that may not describe it.
    monkeypatch.setitem(tracking.TRACKERS, "mlflow", lambda *_: "7")
    run = _run_folder(tmp_path / "run", [*RUN, "tracking=mlflow"])
    summary = {**card_summary(run, RECORD), "status": "ok", "final_accuracy": 0.9}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "model" / "README.md").unlink(missing_ok=True)
    past = (run / "summary.json").stat().st_mtime - 100
    os.utime(run / "summary.json", (past, past))
    os.utime(run / "model" / "config.json", (past + 1, past + 1))
    config = compose_config([*RUN, "tracking=mlflow"])
    settings = settings_from_dict({**config, "run_dir": str(run)})
    with pytest.raises(FedmodelError, match="was written after"):
        finished_sweep_job(run, settings)
    assert not (run / "model" / "README.md").exists()


def _finished_untracked_run(run: Path, uri: str) -> Path:
    """A run folder whose summary says finished, to be tracked by MLflow at `uri`."""
    run = _run_folder(run, [*RUN, "tracking=mlflow", f"tracking.uri={uri}"])
    summary = {**card_summary(run, RECORD), "status": "ok", "final_accuracy": 0.9}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _contents(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_missing_cards_of_a_run_another_version_made_name_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A resolved config with a key this version lacks gave only "config key
    # ... is missing; compose the config from fedmodel/conf", as if the user
    # had composed it, not that another fedmodel version made the run.
    run = _run_folder(tmp_path / "run", RUN)
    summary = {**card_summary(run, RECORD), "status": "ok", "final_accuracy": 0.9}
    (run / "summary.json").write_text(json.dumps(summary))
    config = yaml.safe_load((run / "resolved_config.yaml").read_text())
    del config["tracking"]
    (run / "resolved_config.yaml").write_text(yaml.safe_dump(config))
    err = _refused([str(run)], capsys)
    assert f"{run / 'resolved_config.yaml'} does not match this fedmodel's" in err
    assert "config key 'tracking' is missing" in err
    assert "the run was likely made by another fedmodel version: write its " in err


def test_a_failed_run_or_one_asked_for_more_rounds_goes_on(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run", RUN)
    _summary(run, "failed")
    check_rounds_left(run, resume_argv(run, []))
    # A run that was given more rounds since, and stopped again.
    _summary(run)
    check_rounds_left(run, resume_argv(run, ["num_rounds=3"]))


def test_relative_paths_are_read_from_the_folder_the_run_began_in(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    began, elsewhere = tmp_path / "began", tmp_path / "elsewhere"
    began.mkdir()
    elsewhere.mkdir()
    files = ["task=files", "task.train_files=[a.csv,b.csv]", "task.test_file=t.csv"]
    monkeypatch.chdir(began)
    run = _run_folder(tmp_path / "run", [*RUN, *files], began=began)
    saved = {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()}
    monkeypatch.chdir(elsewhere)
    # The files compare equal (read from where the run began), so the checks
    # name the one key this resume changes: under DP, the plan's rounds.
    err = _refused([str(run), "num_rounds=3"], capsys)
    assert "resume=true in" in err and "num_rounds=3 (the run's: 2)" in err
    assert "task." not in err
    # The refused start's overrides are not left as the run's: Hydra's files
    # are put back, and a plain `fedmodel resume` replays the run's own.
    assert {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()} == saved


def test_a_refused_resume_typed_by_hand_leaves_the_runs_hydra_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `fedmodel simulate ... resume=true hydra.run.dir=RUN`, refused by the
    # checks (a changed num_clients): Hydra wrote its .hydra files before
    # they ran, and they are the run's own again, as after `fedmodel resume`.
    run = _run_folder(tmp_path / "run", RUN)
    saved = {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()}
    changed = [o if not o.startswith("num_clients=") else "num_clients=3" for o in RUN]
    argv = [*changed, "resume=true", f"hydra.run.dir={run}"]
    try:
        code = run_command(["simulate", *argv])
    except SystemExit as stopped:
        code = stopped.code
    assert code == 2
    assert capsys.readouterr().err.startswith("fedmodel simulate: error: ")
    assert {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()} == saved


@pytest.mark.parametrize("name", HYDRA_SYNTAX_FOLDERS)
def test_a_folder_named_with_hydras_syntax_is_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # Hydra's override grammar reads , [ ] = ' and spaces as syntax: unquoted,
    # `hydra.run.dir=RUN` named another folder or did not parse.
    run = _run_folder(tmp_path / "out" / name, RUN)
    assert named_run_dir([run_dir_override(run)]) == run
    # Refused inside the Hydra app, by a check that names the folder Hydra
    # gave it: the run's own.
    err = _refused([str(run), "num_clients=3"], capsys)
    assert f"resume=true in {run} with num_clients=3" in err


def test_a_folder_hydra_would_interpolate_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_folder(tmp_path / "a${now:%H}", RUN)
    err = _refused([str(run)], capsys)
    assert f"{run}: Hydra reads '${{'" in err and "rename it" in err


def test_an_extra_override_replaces_the_runs_value_once(tmp_path: Path) -> None:
    # Hydra takes the later of two values for a key, but keeps both in
    # overrides.yaml: each resume that set num_rounds would add one more.
    run = _run_folder(tmp_path / "run", RUN)
    for rounds in (3, 4):
        argv = resume_argv(run, [f"num_rounds={rounds}"])
        ours = [o for o in argv if not o.startswith("hydra.")]
        assert [o for o in ours if o.startswith("num_rounds=")] == [
            f"num_rounds={rounds}"
        ]
        assert compose_config(ours)["num_rounds"] == rounds
        # What Hydra keeps of the start in the folder, for the next resume.
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ours))
    assert resume_argv(run, []).count("num_rounds=4") == 1


def test_a_resumed_sweep_keeps_a_finished_job_as_it_is(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `simulate --multirun ... resume=true` in a stopped sweep's folder, as
    # the refusal of a new start there advises. Before, each finished job
    # was run again: no round, but its model exported and its summary.json
    # rewritten, the sweep's minutes (wall_seconds) now the resume's seconds.
    from fedmodel.federation import simulation

    def run_again(*_: Any, **__: Any) -> None:
        raise AssertionError("the finished job was run again")

    monkeypatch.setattr(simulation, "simulate", run_again)
    sweep = tmp_path / "sweep"
    job = _run_folder(sweep / "0", RUN)
    _summary(job)
    summary = json.loads((job / "summary.json").read_text())
    (job / "summary.json").write_text(json.dumps({**summary, "final_accuracy": 0.5}))
    kept = _files(job)
    launch = ["--multirun", *RUN, "resume=true", f"hydra.sweep.dir={sweep}"]
    assert run_simulate(launch) == 0
    assert "has finished" in capsys.readouterr().err
    assert _files(job) == kept  # its log says why it was left
    overrides = (job / ".hydra" / "overrides.yaml").read_text()
    # A finished run of other settings in the job's folder is another job's.
    with pytest.raises(SystemExit):
        run_simulate([*launch, "finetune.learning_rate=0.5"])
    assert "finetune.learning_rate" in capsys.readouterr().err
    assert (job / ".hydra" / "overrides.yaml").read_text() == overrides


def _files(run: Path) -> dict[Path, bytes]:
    """What the run folder's files hold, its log aside."""
    files = [p for p in run.iterdir() if p.is_file() and p.suffix != ".log"]
    return {p: p.read_bytes() for p in files}


@pytest.mark.parametrize("sweep", [False, True])
def test_a_resume_in_a_named_folder_that_holds_no_run_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweep: bool
) -> None:
    # A single run's resume must name its folder; one that holds no run yet
    # starts a new run there (with the server's warning), so that one command
    # both starts a run and continues it. A sweep's job that had not started
    # when the sweep stopped holds no run either, and starts.
    from fedmodel.federation import simulation

    class Started(Exception):
        pass

    def started(*_: Any, **__: Any) -> None:
        raise Started

    monkeypatch.setattr(simulation, "simulate", started)
    where = (
        ["--multirun", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
        if sweep
        else [f"hydra.run.dir={tmp_path / 'run'}"]
    )
    with pytest.raises(Started):
        run_simulate([*where, *RUN, "resume=true"])
