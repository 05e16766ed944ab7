"""A key given twice among a command's overrides: refused before anything composes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.cli.resume import resume_argv
from fedmodel.cli.simulate import run_simulate
from fedmodel.config import compose_config
from fedmodel.config.repeated_keys import refuse_repeated_keys
from fedmodel.errors import FedmodelError
from fedmodel.federation.server_setup import settings_from_run_config
from tests.unit.test_resume import RUN, _run_folder, _summary


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        # Before: planned and run with the last, model=tiny, without a word.
        (["model=nope", "model=tiny", "debug=smoke"], "model=nope then model=tiny"),
        (
            ["finetune.learning_rate=0.1", "finetune.learning_rate=0.3"],
            "finetune.learning_rate=0.1 then finetune.learning_rate=0.3",
        ),
        # One key whatever its prefix: an add, a force-add, a deletion.
        (["+num_rounds=1", "num_rounds=2"], "+num_rounds=1 then num_rounds=2"),
        (["++seed=1", "seed=2"], "++seed=1 then seed=2"),
        (["+privacy=dpsgd", "privacy=off"], "+privacy=dpsgd then privacy=off"),
        (["num_rounds=3", "~num_rounds"], "num_rounds=3 then ~num_rounds"),
        (["seed=1", "seed=2", "seed=3"], "seed=1 then seed=2 then seed=3"),
        # An int and a float compose different configs.
        (["num_rounds=1", "num_rounds=1.0"], "num_rounds=1 then num_rounds=1.0"),
        (
            ["privacy.target_epsilon=1,3", "privacy.target_epsilon=8"],
            "privacy.target_epsilon=1,3 then privacy.target_epsilon=8",
        ),
        (
            ["hydra.job.chdir=true", "hydra.job.chdir=false"],
            "hydra.job.chdir=true then hydra.job.chdir=false",
        ),
    ],
)
def test_a_key_given_twice_is_refused_naming_each_value_in_order(
    overrides: list[str], named: str
) -> None:
    key = overrides[1].lstrip("+~").partition("=")[0]
    with pytest.raises(FedmodelError) as refused:
        refuse_repeated_keys(overrides)
    count = named.count(" then ") + 1
    assert str(refused.value) == (
        f"{key} is given {count} times ({named}), and Hydra would take the last "
        f"without a word: give {key} once"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        # The same value again composes the same config, whichever counts.
        ["model=tiny", "model=tiny"],
        ["seed=1", "seed=1"],
        ["task.split_seed=null", "task.split_seed=null"],
        # A sweep is one override; another package is another key.
        ["privacy.target_epsilon=1,3,8"],
        ["model=tiny", "model@student=tiny"],
    ],
)
def test_one_value_per_key_is_taken(overrides: list[str]) -> None:
    refuse_repeated_keys(overrides)


def test_the_same_value_twice_composes_as_once() -> None:
    assert compose_config(["model=tiny", "model=tiny"]) == compose_config(
        ["model=tiny"]
    )


def test_privacy_plan_refuses_a_key_given_twice(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_command(["privacy-plan", "model=nope", "model=tiny", "debug=smoke"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fedmodel privacy-plan: error: model is given 2 times (model=nope then "
        "model=tiny), and Hydra would take the last without a word: give model once"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("multirun", [False, True])
def test_a_refused_start_leaves_the_run_folder_as_it_was(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    multirun: bool,
) -> None:
    run = _run_folder(tmp_path / "run", RUN)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    repeated = ["seed=1,2" if multirun else "seed=1", "seed=3"]
    folder = (
        f"hydra.sweep.dir={tmp_path / 'sweep'}" if multirun else f"hydra.run.dir={run}"
    )
    # A delta no client may have stops a start taken without the check, before Ray.
    argv = [*RUN, *repeated, "privacy.target_delta=1.5", "resume=true", folder]
    try:
        code = run_simulate(["--multirun", *argv] if multirun else argv)
    except SystemExit as stopped:
        code = stopped.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmodel simulate: error: seed is given 2 times"), err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_resume_refuses_a_key_its_extra_overrides_give_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_folder(tmp_path / "run", RUN)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    extra = ["num_rounds=3", "num_rounds=4", "privacy.target_delta=1.5"]
    try:
        code = run_command(["resume", str(run), *extra])
    except SystemExit as stopped:  # refused inside the Hydra app, which exits
        code = stopped.code
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "fedmodel resume: error: num_rounds is given 2 times (num_rounds=3 then "
        "num_rounds=4), and Hydra would take the last without a word: give "
        "num_rounds once"
    )
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_resume_names_a_key_given_twice_before_the_run_has_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "the run in RUN has finished (summary.json: num_rounds=2, round
    # 2 is done): nothing to resume", the typo named only once that was fixed.
    run = _run_folder(tmp_path / "run", RUN)
    _summary(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert run_command(["resume", str(run), "seed=1", "seed=2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fedmodel resume: error: seed is given 2 times (seed=1 then seed=2), and "
        "Hydra would take the last without a word: give seed once"
    )
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    "extra", [["num_rounds=3"], ["resume=true"], ["hydra.run.dir=run"], []]
)
def test_a_resumes_extra_override_of_a_stored_key_is_no_repeat(
    tmp_path: Path, extra: list[str]
) -> None:
    # RUN sets num_rounds; the resume sets resume and the folder itself.
    run = _run_folder(tmp_path / "run", RUN, began=tmp_path)
    refuse_repeated_keys(resume_argv(run, extra))


def test_a_flwr_runs_overrides_are_checked_alike() -> None:
    run_config = {"overrides": "model=tiny seed=1 seed=2", "run-dir": ""}
    with pytest.raises(FedmodelError, match=r"^seed is given 2 times \(seed=1 then"):
        settings_from_run_config(run_config)
