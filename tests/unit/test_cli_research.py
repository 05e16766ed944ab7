"""`fedmodel privacy-plan`, `sweep-report`, `audit`: a bad input is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.cli.privacy_plan_args import SHOWN_JOBS
from tests.unit.cli_probe import (
    BAD_FILES,
    HEAVY,
    MODEL_LIBRARIES,
    bad_file_probed,
    probed,
)


def test_privacy_plan_reports_a_bad_override_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_command(["privacy-plan", "num_client=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmodel privacy-plan: error: unknown config key")
    assert "did you mean 'num_clients'?" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("nosuchkey=1", "unknown config key 'nosuchkey'"),
        ("privacy.target_epsilon=-1", "must be a finite number > 0"),
    ],
)
def test_privacy_plan_refuses_a_bad_override_before_importing_torch(
    given: str, said: str
) -> None:
    # The plan's code loads torch, transformers and Opacus (10-20 s); the
    # overrides are read without them.
    result, done = probed("privacy-plan", "model=tiny", given)
    assert result == {"code": 2, "heavy": []}, done.stderr[-2000:]
    assert said in done.stderr


@pytest.mark.parametrize("privacy", ["privacy=dpsgd", "privacy=central"])
@pytest.mark.parametrize(("files", "named"), BAD_FILES)
def test_privacy_plan_refuses_a_bad_data_file_before_torch_loads(
    tmp_path: Path, files: tuple[str, ...], named: str, privacy: str
) -> None:
    # Before, the plan's code (torch, Opacus, transformers: 3.6 s) loaded
    # first, and the model's checks ran before the files were read. Under
    # privacy=central, whose plan counts clients, no train file or labels'
    # description was read at all: a plan was shown for a run that
    # `fedmodel simulate` refuses.
    result, done = bad_file_probed("privacy-plan", tmp_path, files, privacy)
    assert result["code"] == 2, done.stderr[-2000:]
    assert "fedmodel privacy-plan: error: " in done.stderr
    assert named.format(tmp=tmp_path) in done.stderr, done.stderr[-2000:]
    assert not MODEL_LIBRARIES & set(result["heavy"]), result


def test_privacy_plan_refuses_a_groups_shared_base_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_command(["privacy-plan", "model=_base"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmodel privacy-plan: error: no option '_base' in config")
    assert err.endswith("options: minilm, tiny") and len(err.splitlines()) == 1


def test_privacy_plan_refuses_run_dir_instead_of_planning_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, the folder was passed over and the default config's plan shown,
    # as if it were the plan of the run in that folder.
    run = tmp_path / "run"
    assert run_command(["privacy-plan", f"run_dir={run}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fedmodel privacy-plan: error: run_dir={run}: privacy-plan runs in no "
        "folder, reads none and plans from its overrides alone; a run's settings "
        "are in DIR/resolved_config.yaml and each client's epsilon in "
        "DIR/summary.json"
    )
    assert not run.exists()


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_privacy_plan_refuses_a_hydra_folder_instead_of_planning_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    # How `simulate` names a run's folder. Before, privacy-plan passed it over
    # and showed the plan of its other overrides, exit 0, as if it were the
    # plan of the run in that folder.
    run = tmp_path / "run"
    argv = ["privacy-plan", "model=tiny", "num_rounds=2", f"{key}={run}"]
    assert run_command(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fedmodel privacy-plan: error: {key}={run}: privacy-plan runs in no "
        "folder, reads none and plans from its overrides alone; a run's settings "
        "are in DIR/resolved_config.yaml and each client's epsilon in "
        "DIR/summary.json"
    )


def test_multirun_over_two_keys_is_refused_with_a_command_per_combination(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before, each command still swept the second key ("... seed=1,2 ...").
    argv = ["privacy-plan", "-m", "seed=1,2", "privacy.target_epsilon=1,3"]
    assert run_command(argv) == 2
    each = "; ".join(
        f"fedmodel privacy-plan seed={seed} privacy.target_epsilon={epsilon}"
        for seed, epsilon in ((1, 1), (1, 3), (2, 1), (2, 3))
    )
    assert f"run it once per combination ({each}); a sweep: " in (
        capsys.readouterr().err
    )
    # Many jobs: the first few commands, and how many in all.
    argv = ["privacy-plan", "-m", "seed=1,2,3", "privacy.target_epsilon=1,3"]
    assert run_command(argv) == 2
    error = capsys.readouterr().err
    assert error.count("fedmodel privacy-plan seed=") == SHOWN_JOBS
    assert f"; and {6 - SHOWN_JOBS} more, 6 in all); a sweep: " in error


def test_audit_confidence_out_of_range_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command(["audit", str(tmp_path), "--confidence", "1.5"]) == 2
    assert "--confidence must be in (0, 1)" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["1", "0", "-3"])
def test_audit_too_few_records_is_a_user_error(
    given: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, the attack failed deep in numpy or scikit-learn, with exit 1 (a
    # finding), after rebuilding the run's records.
    assert run_command(["audit", str(tmp_path), "--max-records", given]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"fedmodel audit: error: --max-records must be at least 2, got {given}; "
        "leave it out for the default (2000)"
    )


def test_audit_of_a_file_says_it_is_not_a_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a.csv"
    a_file.write_text("text,label\n")
    assert run_command(["audit", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert f"{a_file} is a file, not a run folder" in err


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("missing", "run folder {path} does not exist"),
        ("a.csv", "{path} is a file, not a run folder"),
        ("empty", "{path} has no resolved_config.yaml"),
    ],
)
def test_audit_refuses_a_wrong_folder_before_importing_torch(
    tmp_path: Path, given: str, said: str
) -> None:
    path = tmp_path / given
    if given == "a.csv":
        path.write_text("text,label\n")
    elif given == "empty":
        path.mkdir()
    result, done = probed("audit", str(path))
    assert result == {"code": 2, "heavy": []}, done.stderr[-2000:]
    assert f"fedmodel audit: error: {said.format(path=path)}" in done.stderr


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("empty", "{path} holds no finished run folder"),
        ("missing", "sweep folder {path} does not exist"),
        ("a-file", "{path} is a file, not a sweep folder"),
    ],
)
def test_sweep_report_refuses_before_importing_torch_pandas_or_matplotlib(
    tmp_path: Path, given: str, said: str
) -> None:
    # summary.json's reader once imported the accountants, and with them
    # Opacus and torch, to read a status; and the report's modules imported
    # pandas and matplotlib (about 1 s on 2 cores) before any refusal.
    path = tmp_path / given
    if given == "empty":
        path.mkdir()
    elif given == "a-file":
        path.write_text("")
    out = ["--out", str(tmp_path / "out")]
    tables = (*HEAVY, "pandas", "matplotlib")
    result, done = probed("sweep-report", str(path), *out, heavy=tables)
    assert result == {"code": 2, "heavy": []}, done.stderr[-2000:]
    assert said.format(path=path) in done.stderr


def test_privacy_plan_refuses_a_resume_instead_of_planning_a_new_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before, resume=true was taken without a word and a new run's plan shown.
    assert run_command(["privacy-plan", "model=tiny", "resume=true"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fedmodel privacy-plan: error: resume=true: privacy-plan runs in no "
        "folder, reads none and plans from its overrides alone; a run's settings "
        "are in DIR/resolved_config.yaml and each client's epsilon in "
        "DIR/summary.json"
    )


def test_privacy_plan_names_the_tasks_labels_as_the_run_will_use_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A label parsed unexpectedly (a code as `3.0`, a class too many) was
    # seen only after training: the plan never named the label set.
    labels = ["3.0", "[red]x[/red]", *"abcdefghij"]
    sites = []
    for site in range(2):
        rows = [f"site {site} note {i},{labels[i % len(labels)]}" for i in range(48)]
        sites.append(tmp_path / f"site{site}.csv")
        sites[-1].write_text("text,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("text,label\nheld out,a\nheld back,b\n")
    argv = [
        "privacy-plan",
        "model=tiny",
        "task=files",
        f"task.train_files=[{','.join(map(str, sites))}]",
        f"task.test_file={tmp_path}/test.csv",
    ]
    assert run_command(argv) == 0
    out = capsys.readouterr().out
    # Quoted, first ten, as typed (no rich markup read into a label).
    assert (
        'task labels (12 classes): "3.0", "[red]x[/red]", "a", "b", "c", "d", '
        '"e", "f", "g", "h" and 2 more\n'
    ) in out
    for privacy in ("dpsgd", "central"):  # central plans no record, all the same
        assert run_command([*argv, "--json", f"privacy={privacy}"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["labels"] == {"count": 12, "names": labels}
        assert list(report) == [
            "training_settings",
            "budget_note",
            "labels",
            "max_length_cuts",
            "clients",
            "measured_notes",
        ]


def test_privacy_plan_counts_the_texts_task_max_length_cuts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A site's notes longer than task.max_length lost their ends in training,
    # and nothing said how many. "note" is one token of MiniLM's tokenizer
    # (the tiny model's): k of them are k + 2 tokens with [CLS] and [SEP].
    def notes(words: list[int]) -> str:
        rows = [f"{'note ' * k},{'ab'[i % 2]}" for i, k in enumerate(words)]
        return "text,label\n" + "\n".join(rows) + "\n"

    (tmp_path / "site0.csv").write_text(notes([6] * 20 + [7] * 4))  # 8 and 9 tokens
    (tmp_path / "site1.csv").write_text(notes([1] * 23 + [300]))
    (tmp_path / "test.csv").write_text(notes([7, 3]))
    (tmp_path / "held.csv").write_text(notes([2, 2, 2, 2]))
    argv = [
        "privacy-plan",
        "model=tiny",
        "task=files",
        f"task.train_files=[{tmp_path}/site0.csv,{tmp_path}/site1.csv]",
        f"task.test_file={tmp_path}/test.csv",
        f"task.validation_file={tmp_path}/held.csv",
    ]
    assert run_command([*argv, "task.max_length=8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    said = (
        "task.max_length 8 cuts 5 of 48 training texts (11%), 1 of 2 test texts "
        "(50%) and 0 of 4 validation texts: a cut text keeps its first 8 tokens "
        "([CLS] and [SEP] among them) and loses the rest; to keep more, raise "
        "task.max_length or shorten those texts"
    )
    # One line, right under the labels line, before the tables.
    assert lines[lines.index(said) - 1] == 'task labels (2 classes): "a", "b"'
    assert run_command([*argv, "task.max_length=302"]) == 0
    assert "task.max_length 302 cuts 0 of 48 training texts, 0 of 2 test texts" in (
        capsys.readouterr().out
    )
    for privacy in ("dpsgd", "central"):  # central plans no record, all the same
        json_argv = [*argv, "task.max_length=8", "--json", f"privacy={privacy}"]
        assert run_command(json_argv) == 0
        assert json.loads(capsys.readouterr().out)["max_length_cuts"] == {
            "max_length": 8,
            "splits": [
                {"split": "training", "cut": 5, "texts": 48},
                {"split": "test", "cut": 1, "texts": 2},
                {"split": "validation", "cut": 0, "texts": 4},
            ],
        }
