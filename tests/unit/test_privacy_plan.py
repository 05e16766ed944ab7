"""`fedmodel privacy-plan` states what the clients' accountants will charge."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from fedmodel.cli.main import run_command
from fedmodel.client.record_check import check_simulated_clients
from fedmodel.config import TaskSettings, settings_from_dict
from fedmodel.data.clients import load_client_data
from fedmodel.data.splits import TaskData
from fedmodel.data.tasks import TASKS
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import PRV_MAX_STEPS
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.sampling import sample_rate_for
from fedmodel.research.calibrated_settings import (
    CalibratedSetting,
    settings_table,
    training_settings,
)
from fedmodel.research.plan_tables import _eps, plan_tables
from fedmodel.research.privacy_plan import (
    PROGRESS_EVERY_S,
    ClientPlan,
    PlanProgress,
    _epsilons,
    epsilon_rounds,
    plan_run,
)
from tests.conftest import SMALL_RUN, small_config, small_run

# A tiny run of 3 clients of 200 records each.
THREE_CLIENTS = [
    "model=tiny",
    "task.max_train_examples=600",
    "num_clients=3",
    "partition=iid",
]


def test_plan_covers_every_client_within_its_target() -> None:
    # That the plan is the one the clients run is checked against their ledgers
    # in tests/integration/test_federated_distill.py.
    settings = settings_from_dict(small_config("privacy.target_epsilon=3"))
    plans = plan_run(settings)
    assert [p.client for p in plans] == [0, 1, 2]
    for client_id, plan in enumerate(plans):
        train, _, _ = load_client_data(settings, client_id)
        assert plan.problem is None
        assert plan.num_records == len(train)
        assert plan.delta == 1 / (10 * len(train))
        assert plan.planned_rounds == settings.num_rounds
        for accountant in ("rdp", "prv"):
            assert len(plan.epsilon_by_round[accountant]) == settings.num_rounds
        charged = plan.epsilon_by_round[settings.privacy.accountant]
        assert charged[-1] <= 3.0
        assert charged[0] < charged[-1]


def test_a_long_plan_states_epsilon_at_spaced_rounds() -> None:
    assert epsilon_rounds(30, teacher_rounds=30) == list(range(1, 31))
    assert epsilon_rounds(300, teacher_rounds=300) == [1, *range(15, 301, 15)]
    # The teacher's last round is a row when students' rounds follow it.
    assert epsilon_rounds(41, teacher_rounds=37) == [
        *[1, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 37, 39, 41]
    ]
    settings = settings_from_dict(small_config("num_clients=1", "num_rounds=62"))
    (plan,) = plan_run(settings)
    assert plan.epsilon_rounds == [1, *range(4, 61, 4), 62]
    assert plan.problem is None and plan.noise_multiplier is not None
    # Each value is the epsilon of that many rounds, by the charging function.
    for accountant in ("rdp", "prv"):
        stated = plan.epsilon_by_round[accountant]
        assert len(stated) == len(plan.epsilon_rounds)
        for done, epsilon in zip(plan.epsilon_rounds, stated, strict=True):
            steps = plan.steps_per_round * done
            history = [(plan.noise_multiplier, plan.sample_rate, steps)]
            expected = epsilon_for(history, delta=plan.delta, accountant=accountant)
            assert epsilon == expected
    assert plan.epsilon_by_round[settings.privacy.accountant][-1] <= 8.0
    _, by_round = plan_tables(settings, [plan])
    assert by_round.title == "epsilon every 4 rounds of 62 (RDP / PRV)"
    rows = list(by_round.columns[0].cells)
    assert rows == [str(done) for done in plan.epsilon_rounds]
    assert "every round is charged all the same" in str(by_round.caption)


def _rdp_plan(*, planned_rounds: int) -> PrivacyPlan:
    """An RDP plan of 10 steps a round at sample rate 0.01, noise 2."""
    return PrivacyPlan(
        target_epsilon=8.0,
        delta=1e-5,
        sample_rate=0.01,
        steps_per_round=10,
        planned_rounds=planned_rounds,
        noise_multiplier=2.0,
        accountant="rdp",
    )


def test_an_rdp_plan_states_prv_only_up_to_its_step_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # RDP may plan past PRV's limit; PRV's column of it would have grown until
    # the system killed it. PRV's rounds within the limit are still stated,
    # and a progress line never names a round PRV is not asked.
    caplog.set_level(logging.INFO, logger="fedmodel.research.privacy_plan")
    plan = _rdp_plan(planned_rounds=PRV_MAX_STEPS)
    rounds = [1, PRV_MAX_STEPS // 10 + 1, PRV_MAX_STEPS]
    progress = PlanProgress(clock=_SlowClock(PROGRESS_EVERY_S))
    prv = _epsilons(plan, "prv", rounds, progress=progress, who="client 0")
    assert prv[0] is not None and prv[1:] == [None, None]
    assert "PRV epsilon after round 1 (1 of 3)" in caplog.text
    assert f"after round {rounds[1]}" not in caplog.text
    rdp = _epsilons(plan, "rdp", rounds, progress=progress, who="client 0")
    assert all(epsilon is not None for epsilon in rdp)


class _SlowClock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_slow_plan_says_which_round_it_is_working_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Over 1000 rounds a client's epsilons took 10 s or more after its
    # "planning client" line, in silence: a line now says where it is, once
    # the last line is PROGRESS_EVERY_S old, and not before.
    caplog.set_level(logging.INFO, logger="fedmodel.research.privacy_plan")
    plan = _rdp_plan(planned_rounds=3)
    quick = PlanProgress(clock=_SlowClock(PROGRESS_EVERY_S / 10))
    _epsilons(plan, "rdp", [1, 2, 3], progress=quick, who="client 2")
    assert caplog.text == ""
    slow = PlanProgress(clock=_SlowClock(PROGRESS_EVERY_S))
    spent = _epsilons(plan, "rdp", [1, 2, 3], progress=slow, who="client 2")
    assert "client 2: RDP epsilon after round 2 (2 of 3)" in caplog.text
    # The same epsilons, however they are reported.
    assert spent == _epsilons(plan, "rdp", [1, 2, 3], progress=quick, who="-")


def test_prv_past_its_step_limit_says_why_not_failed() -> None:
    # An RDP plan past PRV's limit read "failed" in PRV's cells, as if PRV had
    # broken; they say the limit, and the caption why and what to change. An
    # accountant that really failed still reads "failed".
    settings = settings_from_dict(small_config("privacy.accountant=rdp"))
    limit_round = PRV_MAX_STEPS // 60
    plan = ClientPlan(
        client=0,
        num_records=2415,
        one_over_n=1 / 2415,
        delta=1e-5,
        sample_rate=0.2,
        steps_per_round=60,
        planned_rounds=2 * limit_round,
        noise_multiplier=40.0,
        epsilon_rounds=[1, limit_round, limit_round + 1, 2 * limit_round],
        epsilon_by_round={"rdp": [0.1, 5.0, 5.1, 8.0], "prv": [None, 4.5, None, None]},
    )
    overview, by_round = plan_tables(settings, [plan])
    final_prv = [c.header for c in overview.columns].index("final eps PRV")
    assert list(overview.columns[final_prv].cells) == ["over limit"]
    assert list(by_round.columns[1].cells) == [
        "0.100 / failed",
        "5.000 / 4.500",
        "5.100 / over limit",
        "8.000 / over limit",
    ]
    caption = str(overview.caption)
    assert f"PRV is not evaluated past its {PRV_MAX_STEPS} steps" in caption
    assert "privacy.accountant=rdp" in caption and "num_rounds" in caption
    assert "finetune.batch_size" in caption
    # Within the limit there is no such note.
    (within,) = plan_run(settings_from_dict(small_config("num_clients=1")))
    assert plan_tables(settings, [within])[0].caption is None


def test_a_one_round_plan_says_one_round() -> None:
    settings = settings_from_dict(small_config("num_clients=1", "num_rounds=1"))
    overview, _ = plan_tables(settings, plan_run(settings))
    assert ", 1 round, calibrated with" in str(overview.title)


def test_federated_distillation_rounds_are_in_the_plan() -> None:
    plain = plan_run(settings_from_dict(small_config()))
    settings = settings_from_dict(small_config("distill=federated", "distill.rounds=2"))
    federated = plan_run(settings)
    for before, after in zip(plain, federated, strict=True):
        assert after.planned_rounds == settings.num_rounds + 2
        assert len(after.epsilon_by_round["prv"]) == settings.num_rounds + 2
        # The same budget over more rounds takes more noise per round.
        assert after.noise_multiplier is not None
        assert before.noise_multiplier is not None
        assert after.noise_multiplier > before.noise_multiplier


def test_progress_line_counts_the_planned_rounds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fedmodel.research.privacy_plan")
    plan_run(settings_from_dict(small_config("num_rounds=1")))
    # Numbered from 0, as the tables and the warnings number the clients.
    assert re.search(r"planning client 0 \(1 of 3\): \d+ records, 1 round", caplog.text)
    caplog.clear()
    federated = ("num_rounds=1", "distill=federated", "distill.rounds=2")
    settings = settings_from_dict(small_config(*federated))
    plans = plan_run(settings)
    assert re.search(
        r"planning client 0 \(1 of 3\): \d+ records, 3 rounds: 1 of the teacher, "
        r"2 of the student",
        caplog.text,
    )
    # The tables say which rounds are the student's, how they clip and at
    # what learning rate they train.
    _, by_round = plan_tables(settings, plans)
    assert list(by_round.columns[0].cells) == ["1", "2 (student)", "3 (student)"]
    shown = training_settings(settings)
    assert shown["distill.rounds"] == CalibratedSetting(2, "set")
    assert shown["privacy.grad_sample_mode"].note == "student rounds: hooks"
    table = settings_table(shown)
    assert list(table.columns[1].cells)[-2] == (
        "onepass (from the budget); student rounds: hooks"
    )
    assert list(table.columns[1].cells)[0] == (
        f"{settings.finetune.learning_rate:g} (from the budget); student rounds: "
        f"{settings.distill.learning_rate:g} (AdamW, distill.learning_rate)"
    )
    assert "distill.rounds" not in training_settings(
        settings_from_dict(small_config("num_rounds=1"))
    )


def test_central_plan_is_one_client_level_budget() -> None:
    settings = settings_from_dict(small_config("privacy=central"))
    (plan,) = plan_run(settings)
    assert plan.client is None and plan.num_records == 3
    assert plan.delta == pytest.approx(1 / 30) and plan.sample_rate == 1.0
    assert plan.steps_per_round == 1
    assert plan.epsilon_by_round[settings.privacy.accountant][-1] <= 8.0
    # Its one-column table by round keeps its title on one line at 80 columns.
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(plan_tables(settings, [plan])[1])
    title, _, header = console.export_text().splitlines()[:3]
    assert title.strip() == "epsilon after each round (RDP / PRV)"
    assert header.split("┃")[2].strip() == "all clients"


def test_central_plan_claims_no_clipping_setting() -> None:
    # The budget rule fills grad_sample_mode in every mode (resolved configs
    # keep it), and the table showed "onepass (from the budget)" for a mode
    # that clips no example.
    settings = settings_from_dict(small_config("privacy=central"))
    assert settings.privacy.grad_sample_mode == "onepass"
    clipping = {"privacy.max_grad_norm", "privacy.grad_sample_mode"}
    shown = training_settings(settings)
    assert not clipping & set(shown)
    assert "finetune.learning_rate" in shown
    table = list(settings_table(shown).columns[0].cells)
    assert not [key for key in table if key.startswith("privacy.")]
    dpsgd = training_settings(settings_from_dict(small_config()))
    assert clipping <= set(dpsgd)


@pytest.mark.parametrize(
    ("override", "flag"),
    [
        ("privacy.target_delta=0.01", "not below 1/n"),
        ("privacy.target_epsilon=0.0001", "cannot be reached"),
        # Refused before PRV's grid grew until the system killed it.
        ("num_rounds=100000000", "more than the 100000 the prv privacy"),
    ],
)
def test_bad_plans_are_flagged_with_exit_1(
    override: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [
        *THREE_CLIENTS,
        "finetune.batch_size=32",
        override,
    ]
    assert run_command(["privacy-plan", "--json", *overrides]) == 1
    plans = json.loads(capsys.readouterr().out)["clients"]
    assert len(plans) == 3
    assert all(flag in plan["problem"] for plan in plans)


def test_a_plan_with_every_client_flagged_shows_no_empty_round_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    overrides = [
        *THREE_CLIENTS,
        "privacy.target_epsilon=0.0001",
    ]
    assert run_command(["privacy-plan", *overrides]) == 1
    shown = capsys.readouterr().out
    assert "cannot be reached" in shown
    assert "epsilon after each round" not in shown


@pytest.mark.parametrize("batch_size", [32, 512])
def test_good_plan_prints_tables_and_exits_0(
    batch_size: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 200 records a client: under an expected batch of 512 each samples at
    # rate 1, which the table marks.
    # As if every step were slow: each has its progress line, on stderr.
    monkeypatch.setattr("fedmodel.research.privacy_plan.PROGRESS_EVERY_S", 0.0)
    overrides = [
        *THREE_CLIENTS,
        f"finetune.batch_size={batch_size}",
        "num_rounds=2",
    ]
    # Overrides on both sides of an option, as users type them.
    assert run_command(["privacy-plan", overrides[0], "--json", *overrides[1:]]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)  # no progress line among the JSON
    assert "client 0: noise multiplier" in err
    assert "client 2: PRV epsilon after round 2 (2 of 2)" in err
    # Numbered as the tables number them, as integers.
    assert [plan["client"] for plan in report["clients"]] == [0, 1, 2]
    assert [plan["sample_rate"] for plan in report["clients"]] == [
        sample_rate_for(200, batch_size)
    ] * 3
    # The settings table, in the JSON too: each value and its source.
    settings = report["training_settings"]
    assert settings["finetune.batch_size"] == {
        "value": batch_size,
        "source": "set",
        "note": None,
    }
    assert settings["num_rounds"]["value"] == 2
    assert settings["finetune.learning_rate"]["source"] == "budget"
    assert run_command(["privacy-plan", *overrides]) == 0
    out = capsys.readouterr().out
    assert "noise mult." in out and "epsilon after each round" in out
    marked = batch_size >= 200
    assert out.count(f"n <= batch {batch_size} *") == (3 if marked else 0)
    assert ("every step takes all n records: sample rate 1" in out) == marked


def test_the_plan_says_when_its_budget_is_below_those_the_rule_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    overrides = ["model=tiny", "task.max_train_examples=300", "num_clients=2"]
    for epsilon in (1, 0.5):
        args = ["privacy-plan", "--json", *overrides]
        assert run_command([*args, f"privacy.target_epsilon={epsilon}"]) == 0
        report = json.loads(capsys.readouterr().out)
        note = report["budget_note"]
        assert (note is None) == (epsilon == 1)
    assert note.startswith("privacy.target_epsilon=0.5 is below 1, the smallest")
    with pytest.raises(SystemExit):
        run_command(["privacy-plan", "--help"])
    shown = capsys.readouterr().out
    assert all(f'"{key}"' in shown for key in report)  # each key --json prints
    args = ["privacy-plan", *overrides, "privacy.target_epsilon=0.5"]
    assert run_command(args) == 0
    # Under the settings table, the same words (rich wraps them).
    assert " ".join(note.split()[:12]) in " ".join(capsys.readouterr().out.split())


def test_privacy_off_has_no_plan(tmp_path: Path) -> None:
    fedmodel = Path(sys.executable).parent / "fedmodel"
    done = subprocess.run(
        [str(fedmodel), "privacy-plan", "model=tiny", "privacy=off"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "privacy is off" in done.stderr and "Traceback" not in done.stderr


def test_a_deployment_is_not_planned_as_if_it_had_simulated_clients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server holds no site's records: it used to plan the clients of a
    # simulation and stop on "0 training records cannot be split".
    test_file = tmp_path / "test.csv"
    test_file.write_text("text,label\nrecord one,a\nrecord two,b\n")
    overrides = [
        "model=tiny",
        "federation=deployment",
        "task=files",
        f"task.test_file={test_file}",
        "task.labels=[a,b]",
        "num_clients=2",
    ]
    assert run_command(["privacy-plan", *overrides]) == 2
    error = capsys.readouterr().err
    assert "federation=deployment" in error and "its own data file" in error
    assert "fedmodel ledger show" in error and "training records" not in error


def test_an_override_with_a_space_for_its_equals_sign_says_how_to_write_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The same words as `fedmodel simulate num_rounds 3`: both check their
    # overrides before Hydra reads them.
    for words in (["num_rounds", "3"], ["num_rounds = 3"]):
        assert run_command(["privacy-plan", "model=tiny", *words]) == 2
        error = capsys.readouterr().err.strip()
        assert error == (
            f"fedmodel privacy-plan: error: cannot parse the override '{words[0]}'"
            ": an override is written KEY=VALUE, with no space around the =; "
            "write num_rounds=3"
        )


def test_progress_line_names_the_file_each_site_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A pattern's files are the clients, sorted by name: the plan says which
    # file is which client.
    (tmp_path / "sites").mkdir()
    for name in ("b", "a"):
        rows = "\n".join(f"{name} note {i},{'ny'[i % 2]}" for i in range(20))
        (tmp_path / "sites" / f"{name}.csv").write_text("text,label\n" + rows + "\n")
    (tmp_path / "test.csv").write_text("text,label\nheld out,y\nheld back,n\n")
    files = (
        "task=files",
        f"task.train_files=[{tmp_path}/sites/*.csv]",
        f"task.test_file={tmp_path}/test.csv",
        "num_clients=null",
        "partition=natural",
        "num_rounds=1",
    )
    caplog.set_level(logging.INFO, logger="fedmodel.research.privacy_plan")
    plan_run(settings_from_dict(small_config(*files)))
    assert f"planning client 0 (1 of 2): 20 records of {tmp_path}/sites/a.csv" in (
        caplog.text
    )
    assert f"planning client 1 (2 of 2): 20 records of {tmp_path}/sites/b.csv" in (
        caplog.text
    )


def _two_sites(folder: Path) -> tuple[str, ...]:
    """A files task of `folder`'s a.csv and b.csv, tested on its test.csv."""
    return (
        "task=files",
        f"task.train_files=[{folder}/a.csv,{folder}/b.csv]",
        f"task.test_file={folder}/test.csv",
        "num_clients=null",
        "partition=natural",
        "num_rounds=1",
    )


def _write_two_sites(folder: Path, *, shared: str | None = None) -> None:
    """Sites a and b, 20 notes each labelled n and y (and `shared` at both)."""
    for site in ("a", "b"):
        rows = [f"{site} note {i},{'ny'[i % 2]}" for i in range(20)]
        if shared is not None:
            rows.append(f"{shared},y")
        (folder / f"{site}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (folder / "test.csv").write_text("text,label\nheld out,y\nheld back,n\n")


def test_the_plan_gives_the_runs_warnings_about_labels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A label only the test file holds, and one class written two ways by
    # two sites: the run warns of both, and so does the plan, before it.
    for site, label in (("a", "Cardiology"), ("b", "cardiology")):
        labels = (label, "Renal")
        rows = "\n".join(f"{site} note {i},{labels[i % 2]}" for i in range(20))
        (tmp_path / f"{site}.csv").write_text("text,label\n" + rows + "\n")
    (tmp_path / "test.csv").write_text("text,label\nheld out,Renal\nheld,Dermatology\n")
    caplog.set_level(logging.WARNING)
    plan_run(settings_from_dict(small_config(*_two_sites(tmp_path))))
    assert "1 label of the test file is no class of the model" in caplog.text
    assert "['Dermatology']" in caplog.text
    assert "'Cardiology' / 'cardiology'" in caplog.text


def test_the_plan_warns_of_a_record_two_sites_hold_as_the_run_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A record in both sites' files is covered by the two epsilons added up:
    # the plan, whose table shows one epsilon per site, says so before the run.
    _write_two_sites(tmp_path, shared="the same note at both sites")
    caplog.set_level(logging.WARNING)
    plan_run(settings_from_dict(small_config(*_two_sites(tmp_path))))
    assert "task.train_files[1] (" in caplog.text
    assert "holds 1 record with a text that task.train_files[0]" in caplog.text
    assert "the bound is the two added up" in caplog.text


def test_the_plan_warns_when_its_clients_are_not_the_sites_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # partition=iid pools the files: a client's epsilon covers its share, not
    # a site's file; the plan's rows are clients, and it says so.
    _write_two_sites(tmp_path)
    caplog.set_level(logging.WARNING)
    overrides = (*_two_sites(tmp_path), "partition=iid", "num_clients=2")
    plan_run(settings_from_dict(small_config(*overrides)))
    assert "partition=iid: the 2 files of task.train_files are pooled" in caplog.text


def test_a_smoke_plan_of_a_files_task_plans_its_sites(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # debug=smoke pooled the 3 files and dealt them to 2 clients (iid): the
    # "try debug=smoke" run was not of the user's sites. Now a client per file.
    sites = []
    for site, records in enumerate((20, 30, 40)):
        rows = [f"site {site} note {i},{'ny'[i % 2]}" for i in range(records)]
        sites.append(tmp_path / f"site{site}.csv")
        sites[-1].write_text("text,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("text,label\nheld out,y\nheld back,n\n")
    caplog.set_level(logging.WARNING)
    argv = [
        "privacy-plan",
        "--json",
        "debug=smoke",
        "task=files",
        f"task.train_files=[{','.join(map(str, sites))}]",
        f"task.test_file={tmp_path}/test.csv",
    ]
    assert run_command(argv) == 0
    plans = json.loads(capsys.readouterr().out)["clients"]
    assert [plan["num_records"] for plan in plans] == [20, 30, 40]
    assert "pooled" not in caplog.text


def test_a_list_of_budgets_names_the_command_that_sweeps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # privacy-plan has no --multirun: the hint names simulate's.
    assert run_command(["privacy-plan", "privacy.target_epsilon=[1,3]"]) == 2
    error = capsys.readouterr().err
    assert "fedmodel simulate --multirun privacy.target_epsilon=1,3,8" in error
    assert "privacy-plan plans one value at a time" in error


@pytest.mark.parametrize("flag", ["--multirun", "-m"])
def test_multirun_is_refused_with_a_command_per_value(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, argparse's bare "fedmodel: error: unrecognized arguments".
    argv = ["privacy-plan", flag, "task=bank", "privacy.target_epsilon=1,3"]
    assert run_command(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(
        "fedmodel privacy-plan: error: privacy-plan plans one value at a time"
        " and takes no --multirun: run it once per value (fedmodel privacy-plan "
        "task=bank privacy.target_epsilon=1; fedmodel privacy-plan task=bank "
        "privacy.target_epsilon=3); a sweep: fedmodel simulate --multirun "
        "task=bank privacy.target_epsilon=1,3"
    )


def test_a_refused_multirun_keeps_json_in_each_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Its commands were written without --json: run as shown, each printed
    # the tables the researcher had not asked for.
    argv = ["privacy-plan", "-m", "--json", "privacy.target_epsilon=1,3"]
    assert run_command(argv) == 2
    assert (
        "run it once per value (fedmodel privacy-plan --json "
        "privacy.target_epsilon=1; fedmodel privacy-plan --json "
        "privacy.target_epsilon=3); a sweep: fedmodel simulate --multirun "
        "privacy.target_epsilon=1,3"
    ) in capsys.readouterr().err


def test_the_plan_reads_the_tasks_records_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The label warnings and the clients' records come from one load: a
    # second read costs seconds on hospital, and could differ from the first.
    _write_two_sites(tmp_path)
    loads: list[str] = []
    files_loader = TASKS["files"]

    def counted(task: TaskSettings, *, seed: int) -> TaskData:
        loads.append(task.name)
        return files_loader(task, seed=seed)

    monkeypatch.setitem(TASKS, "files", counted)
    settings = settings_from_dict(small_config(*_two_sites(tmp_path)))
    plans = plan_run(settings)
    assert loads == ["files"]
    assert [plan.num_records for plan in plans] == [
        len(load_client_data(settings, client)[0]) for client in (0, 1)
    ]


def test_a_count_noise_the_run_refuses_is_flagged_in_the_servers_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The plan said "ok" for it, and simulate refused it at start-up. Noise
    # multiplier 0.518 here: the count's noise must exceed 0.259.
    overrides = ["privacy=central", "privacy.clipped_count_stddev=0.1"]
    with pytest.raises(FedmodelError) as refused:
        check_simulated_clients(settings_from_dict(small_config(*overrides)))
    assert "privacy.clipped_count_stddev=0.1 must exceed" in str(refused.value)
    assert run_command(["privacy-plan", "--json", *SMALL_RUN, *overrides]) == 1
    (plan,) = json.loads(capsys.readouterr().out)["clients"]
    assert plan["problem"] == str(refused.value)


@pytest.mark.parametrize(
    ("override", "refusal"),
    [
        ("task.max_length=1000", "task.max_length=1000 is longer than"),
        ("distill.student.num_layers=9", "distill.student.num_layers=9: the teacher"),
    ],
)
@pytest.mark.parametrize("privacy", ["dpsgd", "central"])
def test_a_model_setting_the_run_refuses_is_refused_by_the_plan(
    override: str, refusal: str, privacy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server refuses these before round 1; the plan was shown for them
    # (under privacy=central until its plan asked the same checks).
    overrides = small_run(f"privacy={privacy}", override)
    assert run_command(["privacy-plan", *overrides]) == 2
    assert refusal in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        (
            ("partition=dirichlet", "partition.min_partition_size=300"),
            "partition.min_partition_size=300 for each of 3 clients needs 900",
        ),
        (("partition=natural",), "partition 'natural' needs partition.column"),
    ],
)
@pytest.mark.parametrize("privacy", ["dpsgd", "central"])
def test_a_partition_the_run_refuses_is_refused_by_the_plan(
    overrides: tuple[str, ...],
    refusal: str,
    privacy: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The run refuses these as it deals its records; under privacy=central
    # the plan dealt none (its one plan counts clients) and was shown, exit 0.
    assert (
        run_command(["privacy-plan", *small_run(f"privacy={privacy}", *overrides)]) == 2
    )
    assert refusal in capsys.readouterr().err


@pytest.mark.parametrize("privacy", ["dpsgd", "central"])
def test_a_budget_of_no_meaningful_privacy_is_warned_of_with_the_planned_noise(
    privacy: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The server warns of it before round 1; the plan said nothing.
    settings = settings_from_dict(
        small_config(f"privacy={privacy}", "privacy.target_epsilon=60")
    )
    with caplog.at_level(logging.WARNING):
        plans = plan_run(settings)
    noise = sorted(plan.noise_multiplier or 0.0 for plan in plans)
    spread = f" to {noise[-1]:.3g}" if noise[-1] > noise[0] else ""
    (warned,) = [r.getMessage() for r in caplog.records if "above 50" in r.getMessage()]
    assert warned.startswith(
        "privacy.target_epsilon=60 is above 50: this is no meaningful privacy "
        f"(the noise multiplier came to {noise[0]:.3g}{spread}, next to no noise)"
    )


def test_lora_targets_the_run_refuses_are_refused_by_the_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The plan said ok; the run refused them as it added the adapters.
    targets = ["finetune=lora", "finetune.lora_targets=[querry,value]"]
    assert run_command(["privacy-plan", *SMALL_RUN, *targets]) == 2
    assert "finetune.lora_targets=['querry', 'value'] names no layer: ['querry']" in (
        capsys.readouterr().err
    )


def test_the_plans_epsilons_are_rounded_up() -> None:
    # 7.9951 was shown as 7.995: the plan stated less than the run spends.
    plan = ClientPlan(
        client=0,
        num_records=10,
        one_over_n=0.1,
        steps_per_round=1,
        epsilon_rounds=[1],
        epsilon_by_round={"rdp": [7.9951]},
    )
    assert _eps(plan, "rdp", 0) == "7.996"


def test_the_plan_refuses_a_cuda_device_this_machine_lacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # simulate refuses device=cuda without CUDA; the plan showed exit 0, a
    # plan for a run that cannot start.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_command(["privacy-plan", *THREE_CLIENTS, "device=cuda"]) == 2
    assert "device=cuda but this machine has no CUDA device" in capsys.readouterr().err


def test_the_plan_warns_of_a_key_its_option_does_not_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # THREE_CLIENTS picks partition=iid, which deals no records by alpha.
    assert run_command(["privacy-plan", *THREE_CLIENTS, "partition.alpha=0.1"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "partition.alpha=0.1 is set, but partition=iid does not read it" in err
