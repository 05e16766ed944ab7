"""`fedmodel simulate`: help, Hydra's errors on one line, what a refused run leaves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fedmodel.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
)
from fedmodel.cli.hydra_errors import hydra_error_line
from fedmodel.cli.main import run_command
from fedmodel.cli.simulate import run_simulate
from fedmodel.cli.simulate_args import check_sweep_jobs
from fedmodel.errors import FedmodelError
from fedmodel.run import folder_check
from fedmodel.run.layout import FLWR_HOME_DIR, LOG_FILE
from tests.unit.cli_probe import (
    BAD_FILES,
    MODEL_LIBRARIES,
    bad_file_probed,
    probed,
)


def test_simulate_help_names_the_app_and_the_outputs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as done:
        run_simulate(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "powered by Hydra" not in out
    assert "fedmodel simulate" in out and "outputs/<date>/<time>-<task>" in out
    assert "debug: smoke" in out
    # A job scheduler reads these: a stopped run's codes, as cli/errors.py's.
    said = " ".join(out.split())
    assert f"{EXIT_OK} done; {EXIT_USER_ERROR} bad config or input" in said
    assert f"{EXIT_INTERRUPTED} stopped by Ctrl-C and {EXIT_TERMINATED} by" in said
    assert "1 an unexpected error, with a traceback" in said


def test_simulate_help_lists_options_not_the_shared_base_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        run_simulate(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    groups = out.split("== Config groups (group=option) ==")[1].split("== Config (")[0]
    assert "model: minilm, tiny\n" in groups
    assert "privacy: central, dpsgd, off\n" in groups
    assert "_base" not in groups


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("num_client=3", "key 'num_client' (did you mean 'num_clients'?)"),
        ("privacy.epsilon=3", "did you mean 'privacy.target_epsilon'?"),
        # A key under the wrong group: spelt closer to 'federation.name'.
        (
            "federation.num_rounds=2",
            "key 'federation.num_rounds' (did you mean 'num_rounds'?)",
        ),
        # A name several groups hold: the closest spelling was distill's.
        (
            "batch_size=64",
            "key 'batch_size' (did you mean one of 'finetune.batch_size', "
            "'distill.batch_size', 'warm_start.batch_size'?)",
        ),
        ("task=nosuch", "no option 'nosuch' in config group 'task'"),
        ("num_rounds=[", "cannot parse the override 'num_rounds=['"),
        # A space where the = belongs: the value is the next argument.
        (
            "num_rounds 3",
            "cannot parse the override 'num_rounds': an override is written "
            "KEY=VALUE, with no space around the =; write num_rounds=3",
        ),
        ("num_rounds= 3", "override '3': an override is written KEY=VALUE, with"),
        ("num_rounds= 3", "; write num_rounds=3"),
        ("seed=1 +num_rounds", "override '+num_rounds': an override is written"),
        ("seed=1 +num_rounds", "; write +num_rounds=VALUE"),
        # A list written with spaces, unquoted: the shell splits it, and the
        # line said "write b.csv]=VALUE".
        (
            "task=files task.train_files=[a.csv, b.csv, c.csv] seed=1",
            "cannot parse the override 'b.csv,': the shell split the list of "
            "'task.train_files=[a.csv,' at a space; quote the whole override: "
            "'task.train_files=[a.csv, b.csv, c.csv]'",
        ),
        (
            "task.train_files=[~/a.csv,~/b.csv]",
            "Hydra takes a ~ only inside quotes: write "
            "\"task.train_files=['~/a.csv','~/b.csv']\"",
        ),
        # A character Hydra's lexer takes only quoted: the line was its bare
        # "LexerNoViableAltException: <the override>", saying nothing to do.
        (
            "task=files task.test_file=A&E/test.csv",
            "cannot parse the override 'task.test_file=A&E/test.csv': Hydra takes "
            "'&' only inside quotes: write \"task.test_file='A&E/test.csv'\"",
        ),
        # An apostrophe: Hydra's quotes hold it escaped.
        (
            "task=files task.test_file=O'Brien/test.csv",
            'Hydra takes "\'" only inside quotes: write '
            "\"task.test_file='O\\'Brien/test.csv'\"",
        ),
        # A double quote: the line was Hydra's bare "mismatched input" or
        # "LexerNoViableAltException", no hint (the shell's quotes broke on it).
        (
            'task=files task.test_file=/data/"x"/t.csv',
            "Hydra takes '\"' only inside quotes: write "
            '"task.test_file=\'/data/\\"x\\"/t.csv\'"',
        ),
        (
            "task=files task.labels=[Café,Bar]",
            "Hydra takes 'é' only inside quotes: write \"task.labels=['Café','Bar']\"",
        ),
        (
            "model=_base",
            "no option '_base' in config group 'model' (model/_base.yaml holds "
            "the keys its options share); options: minilm, tiny",
        ),
        (
            "partition=_bas",
            "no option '_bas' in config group 'partition'; "
            "options: dirichlet, iid, natural",
        ),
        ("privacy=dpsdg", "(did you mean 'dpsgd'?); options: central, dpsgd, off"),
        ("--multirun model=tiny,_base", "no option '_base' in config group 'model'"),
        (
            "--multirun privacy.target_epsilon=1,3,8 --cfg job",
            "--multirun and --cfg cannot be given together: give one of them "
            "(--multirun runs a sweep; --cfg prints the composed config and runs "
            "nothing)",
        ),
        ("--resolve", "--resolve works only with --cfg or --help"),
        (
            "~privacy.target_delta",
            "cannot delete config key 'privacy.target_delta' (~privacy.target_delta)"
            ": a run reads every key of fedmodel's config, so keys are set, not "
            "deleted; write privacy.target_delta=VALUE",
        ),
        ("~num_rounds=12345", "cannot delete config key 'num_rounds'"),
        # A key that holds a value: Hydra would delete it and the run stop on
        # a missing key; a group: Hydra would drop the whole group.
        ("~num_rounds", "cannot delete config key 'num_rounds' (~num_rounds)"),
        (
            "~distill",
            "cannot delete config group 'distill' (~distill): a run takes one "
            "option of each group; pick one with distill=OPTION (options: "
            "federated, off, server)",
        ),
        (
            "--multirun privacy.target_epsilon=1,3 ~seed",
            "sweep job 1 of 2 (privacy.target_epsilon=1): cannot delete config "
            "key 'seed' (~seed)",
        ),
        # The command sets run_dir to its folder: a value here was dropped
        # without a word, and resume=true then began a new run elsewhere.
        (
            "resume=true run_dir=/elsewhere",
            "run_dir=/elsewhere: run_dir is set by the command to the folder it "
            "runs in, not by an override; name it with hydra.run.dir=DIR (and "
            "resume=true to continue the run in DIR;",
        ),
        ("--multirun run_dir=a,b", "run_dir=a,b: run_dir is set by the command"),
        ("~run_dir", "~run_dir: run_dir is set by the command"),
        (
            "~privacy.target_delt",
            "unknown config key 'privacy.target_delt' (did you mean "
            "'privacy.target_delta'?)",
        ),
    ],
)
def test_hydra_config_errors_exit_2_on_one_line(
    override: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_simulate(override.split()) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmodel simulate: error: ") and expected in err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "words",
    [
        # One quoted word: Hydra's bare "LexerNoViableAltException", or
        # "write num_rounds 3=VALUE".
        ["num_rounds = 3"],
        ["num_rounds =3"],
        ["num_rounds 3"],
        # The shell's words: "write num_rounds=VALUE".
        ["num_rounds", "=", "3"],
        ["num_rounds", "=3"],
    ],
)
def test_an_override_with_spaces_for_its_equals_sign_says_how_to_write_it(
    words: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_simulate(words) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel simulate: error: cannot parse the override '{words[0]}': an "
        "override is written KEY=VALUE, with no space around the =; write "
        "num_rounds=3"
    )


def test_a_config_fedmodel_rejects_leaves_no_run_folder(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as done:
        run_simulate(
            ["model=tiny", "privacy.target_delta=1.5", f"hydra.run.dir={run_dir}"]
        )
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "fedmodel simulate: error: " in err and "target_delta" in err
    assert not run_dir.exists()


@pytest.mark.parametrize("inside", [(), (".hydra",)])
def test_a_rejected_run_keeps_a_folder_the_user_made(
    inside: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An empty folder made for the run and named with hydra.run.dir was
    # removed with what the refused start wrote into it.
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    for name in inside:
        (run_dir / name).mkdir()
    with pytest.raises(SystemExit) as done:
        run_simulate(
            ["model=tiny", "privacy.target_delta=1.5", f"hydra.run.dir={run_dir}"]
        )
    assert done.value.code == 2
    assert "target_delta" in capsys.readouterr().err
    assert run_dir.is_dir()
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")) == (
        list(inside)
    )


def test_a_sweeps_bad_job_stops_it_before_the_first_job_runs(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = ["model=tiny", "privacy.target_epsilon=8,-1", "seed=1,2"]
    assert run_simulate(["--multirun", *sweep, "hydra.sweep.dir=sweep"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "fedmodel simulate: error: sweep job 3 of 4 (privacy.target_epsilon=-1 "
        "seed=1): config key 'privacy.target_epsilon' must be a finite number > 0"
    ), err
    assert err.endswith("no job has run") and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_an_unusable_run_folder_is_one_error_line(
    mode: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A folder under a file (as a read-only one) is refused in the shared
    # format; before, it was a log line, "HH:MM:SS fedmodel hydra.run.dir: ...".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    folder = tmp_path / "afile" / "run"
    argv = ["model=tiny", f"hydra.{mode}.dir={folder}"]
    assert run_simulate(["--multirun", *argv] if mode == "sweep" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fedmodel simulate: error: hydra.{mode}.dir: the run folder {folder} "
        f"cannot be used: {folder.parent} is a file, not a folder; choose a "
        f"folder you can write (e.g. hydra.{mode}.dir=outputs/my-run) or fix "
        "its permissions"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_a_resume_in_a_read_only_run_folder_is_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run folder on a read-only mount: refused by the folder check, and
    # its .hydra files, unchanged, are not written back (before, that write
    # ended in an OSError traceback, exit 1).
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- model=tiny\n")

    def read_only(folder: Path, **kwargs: object) -> None:
        raise FedmodelError(f"{folder} cannot be written (Read-only file system)")

    def no_write(path: Path, data: bytes) -> int:
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(folder_check, "check_writable_folder", read_only)
    monkeypatch.setattr(Path, "write_bytes", no_write)
    argv = ["model=tiny", "resume=true", f"hydra.run.dir={run_dir}"]
    assert run_simulate(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fedmodel simulate: error: {run_dir} cannot be written (Read-only file system)"
    )


def test_a_rejected_run_leaves_no_empty_date_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        run_simulate(["model=tiny", "privacy.target_delta=0.9"])
    assert done.value.code == 2
    # Nor the outputs/ folder Hydra made for it.
    assert list(tmp_path.iterdir()) == []


def test_a_rejected_run_keeps_an_outputs_folder_it_did_not_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    with pytest.raises(SystemExit) as done:
        run_simulate(["model=tiny", "privacy.target_delta=0.9"])
    assert done.value.code == 2
    assert list((tmp_path / "outputs").iterdir()) == []


def test_a_sweep_over_a_groups_options_by_glob_is_left_to_hydra() -> None:
    # Only Hydra's sweeper can list a group's options for glob(); checking
    # the jobs ahead used to end in Hydra's "ConfigLoader is not set".
    check_sweep_jobs(["model=glob(t*)", "privacy.target_epsilon=1,3"])
    with pytest.raises(FedmodelError, match="sweep job 2 of 2"):
        check_sweep_jobs(["model=tiny", "privacy.target_epsilon=1,-3"])


def test_a_delta_too_large_for_a_client_stops_before_flower_loads(
    tmp_path: Path,
) -> None:
    # The check needs each client's record count, so it reads the data; it
    # must still come before the simulation stack (Flower, Ray) is imported.
    run_dir = tmp_path / "run"
    result, done = probed(
        "simulate",
        "model=tiny",
        "privacy.target_delta=0.5",
        f"hydra.run.dir={run_dir}",
        timeout=300,
    )
    assert result["code"] == 2, done.stderr[-2000:]
    assert "privacy.target_delta below" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not {"flwr", "ray"} & set(result["heavy"]), result
    assert not run_dir.exists()


@pytest.mark.parametrize(("files", "named"), BAD_FILES)
def test_a_bad_data_file_is_refused_before_torch_loads(
    tmp_path: Path, files: tuple[str, ...], named: str
) -> None:
    # A data file's mistake is a user's first: it is said in the time the
    # files take to read, not after torch, Opacus and transformers load.
    run_dir = tmp_path / "run"
    result, done = bad_file_probed(
        "simulate", tmp_path, files, f"hydra.run.dir={run_dir}"
    )
    assert result["code"] == 2, done.stderr[-2000:]
    assert "fedmodel simulate: error: " in done.stderr
    assert named.format(tmp=tmp_path) in done.stderr, done.stderr[-2000:]
    assert not MODEL_LIBRARIES & set(result["heavy"]), result
    assert not run_dir.exists()


def test_a_rejected_resume_keeps_the_run_folder(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit):
        run_simulate(
            ["model=tiny", "privacy.target_delta=1.5", f"hydra.run.dir={run_dir}"]
        )
    capsys.readouterr()
    assert (run_dir / "metrics.jsonl").read_text() == "{}\n"


def test_a_rejected_run_keeps_an_earlier_runs_log_and_flower_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An earlier run stopped before round 1 (interrupted while Flower started)
    # left its log and Flower's folder: a run refused in the same folder
    # holds nothing else either, but the earlier run's log is not its own.
    run_dir = tmp_path / "run"
    (run_dir / FLWR_HOME_DIR).mkdir(parents=True)
    (run_dir / LOG_FILE).write_text("the earlier run's lines\n")
    with pytest.raises(SystemExit):
        run_simulate(
            ["model=tiny", "privacy.target_delta=1.5", f"hydra.run.dir={run_dir}"]
        )
    capsys.readouterr()
    assert (run_dir / LOG_FILE).read_text().startswith("the earlier run's lines\n")
    assert (run_dir / FLWR_HOME_DIR).is_dir()


def test_a_generic_hydra_error_keeps_its_first_line() -> None:
    from hydra.errors import HydraException

    assert hydra_error_line(HydraException("first line\nsecond")) == "first line"


@pytest.mark.parametrize("command", ["simulate", "privacy-plan"])
def test_several_values_without_multirun_say_how_to_sweep(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before, Hydra's first line alone: "Ambiguous value for argument '...'".
    monkeypatch.chdir(tmp_path)
    assert run_command([command, "privacy.target_epsilon=1,3"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel {command}: error: 'privacy.target_epsilon=1,3' gives several "
        "values, and a run takes one (a sweep: fedmodel simulate --multirun "
        "privacy.target_epsilon=1,3; privacy-plan plans one value at a time; a "
        "list is written key=[a,b])"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["simulate", "privacy-plan"])
@pytest.mark.parametrize("key", ["task.train_files", "task.labels"])
def test_a_list_written_without_brackets_is_shown_with_them(
    command: str,
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: "... (a sweep: fedmodel simulate --multirun task.train_files=
    # a.csv,b.csv; ...)", whose jobs would each be refused: not a list.
    monkeypatch.chdir(tmp_path)
    assert run_command([command, "task=files", f"{key}=a.csv,b.csv"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel {command}: error: '{key}=a.csv,b.csv' gives several values, "
        f"and {key} is a list: write it in brackets, '{key}=[a.csv,b.csv]'"
    )
    assert list(tmp_path.iterdir()) == []


def test_privacy_plan_refuses_a_deleted_key_by_name(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_command(["privacy-plan", "model=tiny", "~num_rounds"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "fedmodel privacy-plan: error: cannot delete config key 'num_rounds' "
        "(~num_rounds): a run reads every key"
    ), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # Before: "Error parsing override '...'" twice over, and no way out.
        (
            "task.labels=[Neoplasms (C00-D49),Acne]",
            "cannot parse the override 'task.labels=[Neoplasms (C00-D49),Acne]': "
            "HydraException while evaluating 'Neoplasms (C00-D49)': Unknown "
            "function 'Neoplasms'; Hydra takes ( and ) only inside quotes: write "
            "\"task.labels=['Neoplasms (C00-D49)','Acne']\"",
        ),
        (
            "task.test_file=my (1).csv",
            "; Hydra takes ( and ) only inside quotes: write "
            "\"task.test_file='my (1).csv'\"",
        ),
    ],
)
def test_a_value_with_parentheses_is_shown_quoted(
    override: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_simulate(["task=files", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmodel simulate: error: ") and err.endswith(expected)
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("override", "value"),
    [
        ('task.test_file=/data/"x"/t.csv', '/data/"x"/t.csv'),
        ('task.labels=[6" pipe,b]', ['6" pipe', "b"]),
        ("task.labels=[6\" pipe's,b]", ["6\" pipe's", "b"]),
        # And what else ends or expands between a shell's double quotes.
        ('task.test_file=a"$HOME`id`\\"\\\\&.csv', 'a"$HOME`id`\\"\\\\&.csv'),
    ],
)
def test_a_value_holding_a_double_quote_is_written_as_the_shell_passes_it(
    override: str,
    value: str | list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    monkeypatch.chdir(tmp_path)
    assert run_simulate(["task=files", override]) == 2
    err = capsys.readouterr().err.strip()
    assert "Hydra takes '\"' only inside quotes: write " in err, err
    written = err.rpartition(": write ")[2]
    # The words bash hands the command of the line's suggestion.
    shell = ["bash", "-c", f"printf '%s\\0' {written}"]
    words = subprocess.run(shell, capture_output=True, text=True, check=True)
    [word] = words.stdout.split("\0")[:-1]
    assert OverridesParser.create().parse_overrides([word])[0].value() == value


def test_relative_data_files_are_the_commands_under_hydra_job_chdir(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: with hydra.job.chdir=true the paths were read from the run
    # folder ("task.train_files[0]='<run>/sites/*' matches no file").
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "a.csv").write_text("note,label\ncough,x\nfever,y\n")
    (tmp_path / "test.csv").write_text("note,label\nrash,x\nache,y\n")
    monkeypatch.chdir(tmp_path)
    argv = [
        "task=files",
        "model=tiny",
        "distill=off",
        "task.train_files=[sites/*]",
        "task.test_file=test.csv",
        "hydra.job.chdir=true",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    with pytest.raises(SystemExit) as done:  # stopped by the column it lacks
        run_simulate(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"file {tmp_path / 'sites' / 'a.csv'} has no text column 'text'" in err


def test_a_refused_sweep_leaves_the_earlier_sweeps_files_as_they_were(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The same sweep started again in its folder: job 0's folder holds job 0's
    # finished run, so the job is refused. Before, Hydra's files of the
    # refused start stayed: job 0's .hydra/overrides.yaml named the new job's
    # values beside the run's resolved config, and multirun.yaml the new
    # sweep, so sweep-report took the run for the new job and no longer named
    # the old sweep's jobs that never ran.
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    (job / ".hydra").mkdir(parents=True)
    files = {
        sweep / "multirun.yaml": "the earlier sweep's manifest\n",
        job / ".hydra" / "overrides.yaml": "- privacy.target_epsilon=1\n",
        job / ".hydra" / "config.yaml": "the run's config\n",
        job / "resolved_config.yaml": "privacy: {target_epsilon: 1.0}\n",
        job / "summary.json": "{}\n",
    }
    for path, text in files.items():
        path.write_text(text)
    argv = ["--multirun", "model=tiny", "privacy.target_epsilon=8"]
    with pytest.raises(SystemExit):
        run_simulate([*argv, f"hydra.sweep.dir={sweep}"])
    err = capsys.readouterr().err
    # The sweep's folder is hydra.sweep.dir (before: "hydra.run.dir=...").
    assert "give the sweep a folder of its own (hydra.sweep.dir=...)" in err
    assert {path: path.read_text() for path in files} == files
    assert sorted(p.name for p in (job / ".hydra").iterdir()) == [
        "config.yaml",
        "overrides.yaml",
    ]


def test_a_resume_that_names_no_run_folder_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before, `simulate resume=true` without hydra.run.dir warned in the log
    # that its new dated folder held no earlier run and ran a whole new run.
    from fedmodel.federation import simulation

    def started(*_: object, **__: object) -> None:
        raise AssertionError("a new run started")

    monkeypatch.setattr(simulation, "simulate", started)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        run_simulate(["model=tiny", "resume=true"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "fedmodel simulate: error: resume=true continues the run in the folder "
        "hydra.run.dir names, and none is named: this start would be a new run "
        f"in a new folder ({tmp_path / 'outputs'}"
    )
    assert err.endswith(
        "Continue a stopped run with `fedmodel resume RUN_DIR` (or "
        "hydra.run.dir=RUN_DIR resume=true), or leave out resume=true to start "
        "a new run"
    )
    assert list(tmp_path.iterdir()) == []  # nor the outputs/ folder it made
