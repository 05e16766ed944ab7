"""`fedmodel report` on a small synthetic sweep folder with known accuracies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fedmodel.cli.main import run_command
from fedmodel.config import settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep import aggregate, markdown_table
from fedmodel.research.sweep_report import write_report
from fedmodel.research.sweep_runs import collect_runs
from tests.conftest import small_config

# (folder, overrides, final accuracy, epsilon spent). SMALL_RUN's num_clients
# would win over the experiment's, hence num_clients=1 again.
CENTRALIZED = ["experiment=centralized", "num_clients=1"]
RUNS = [
    ("dp/0", ["privacy.target_epsilon=1", "seed=1"], 0.60, 0.99),
    ("dp/1", ["privacy.target_epsilon=1", "seed=2"], 0.64, 0.98),
    ("dp/2", ["privacy.target_epsilon=8", "seed=1"], 0.70, 7.9),
    ("dp/3", ["privacy.target_epsilon=8", "seed=2"], 0.74, 7.95),
    ("off/0", ["privacy=off", "seed=1"], 0.80, None),
    ("off/1", ["privacy=off", "seed=2"], 0.82, None),
    ("central/0", [*CENTRALIZED, "privacy=off", "seed=1"], 0.90, None),
    (
        "central/1",
        [*CENTRALIZED, "privacy.target_epsilon=8", "seed=1"],
        0.85,
        7.99,
    ),
]


def write_run(
    run_dir: Path, overrides: list[str], accuracy: float, epsilon: float | None
) -> None:
    settings = settings_from_dict({**small_config(*overrides), "run_dir": str(run_dir)})
    run_dir.mkdir(parents=True)
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(settings)))
    clients = [
        {"client_id": i, "epsilon": epsilon, "delta": 1e-4 if epsilon else None}
        for i in range(settings.num_clients)
    ]
    summary = {
        "final_accuracy": accuracy,
        "final_macro_f1": accuracy - 0.05,
        "rounds_completed": settings.num_rounds,
        "wall_seconds": 60.0,
        "clients": clients,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    for folder, overrides, accuracy, epsilon in RUNS:
        write_run(tmp_path / "sweep" / folder, overrides, accuracy, epsilon)
    return tmp_path / "sweep"


def test_report_aggregates_means_spreads_and_costs(sweep: Path) -> None:
    runs = collect_runs(sweep)
    assert len(runs) == len(RUNS)
    table = aggregate(runs).set_index(["setting", "target_epsilon"])

    fed_dp = "federated, record-level DP"
    row = table.loc[(fed_dp, 1.0)]
    assert row["seeds"] == 2
    assert row["accuracy_mean"] == pytest.approx(0.62)
    assert row["accuracy_std"] == pytest.approx(pd.Series([0.60, 0.64]).std())
    assert row["epsilon_spent_max"] == pytest.approx(0.99)
    # Cost of privacy: against the non-private federated mean 0.81.
    assert row["privacy_cost"] == pytest.approx(100 * (0.81 - 0.62))
    # Cost of federation at epsilon 8: the centralized DP run at epsilon 8.
    assert table.loc[(fed_dp, 8.0)]["federation_cost"] == pytest.approx(
        100 * (0.85 - 0.72)
    )
    assert pd.isna(table.loc[(fed_dp, 1.0)]["federation_cost"])
    off = table.xs("federated, non-private", level="setting").iloc[0]
    assert off["accuracy_mean"] == pytest.approx(0.81)
    assert off["federation_cost"] == pytest.approx(100 * (0.90 - 0.81))
    central_dp = table.loc[("centralized, record-level DP", 8.0)]
    assert central_dp["privacy_cost"] == pytest.approx(100 * (0.90 - 0.85))


def test_the_budget_rules_own_epochs_keep_one_setting(tmp_path: Path) -> None:
    # The default command at epsilon 1 and 8 and without privacy: the rule
    # gives them 6, 12 and 12 local epochs, yet they are one setting each
    # and the non-private run is the DP runs' reference. An explicit value
    # other than the rule's is a setting of its own.
    rule = "finetune.local_epochs=null"
    runs = [
        ("dp/0", [rule, "privacy.target_epsilon=1"], 0.60, 0.99),
        ("dp/1", [rule, "privacy.target_epsilon=8"], 0.70, 7.9),
        ("off/0", [rule, "privacy=off"], 0.80, None),
        ("dp3/0", ["finetune.local_epochs=3", "privacy.target_epsilon=8"], 0.65, 7.9),
    ]
    for folder, overrides, accuracy, epsilon in runs:
        write_run(tmp_path / "sweep" / folder, overrides, accuracy, epsilon)
    found = collect_runs(tmp_path / "sweep").set_index("run")
    assert list(found.loc[["dp/0", "dp/1", "off/0"], "local_epochs"]) == [6, 12, 12]
    table = aggregate(found.reset_index()).set_index(["setting", "target_epsilon"])
    auto = "federated, record-level DP, local_epochs=auto"
    assert table.loc[(auto, 1.0)]["privacy_cost"] == pytest.approx(100 * (0.80 - 0.60))
    assert table.loc[(auto, 8.0)]["privacy_cost"] == pytest.approx(100 * (0.80 - 0.70))
    assert "federated, non-private, local_epochs=auto" in table.index.levels[0]
    three = table.loc[("federated, record-level DP, local_epochs=3", 8.0)]
    assert pd.isna(three["privacy_cost"])  # no non-private run at 3 epochs


def test_a_value_set_equal_to_the_rules_is_a_setting_of_its_own(
    tmp_path: Path,
) -> None:
    # At epsilon 1 the rule gives 6 local epochs. A run that sets 6 itself
    # lists no budget_rule_keys entry for it: it is not the default, though
    # its value is the same, and is not averaged with it as a seed.
    eps1 = "privacy.target_epsilon=1"
    runs = [
        ("rule/0", ["finetune.local_epochs=null", eps1, "seed=1"], 0.60, 0.99),
        ("set/0", ["finetune.local_epochs=6", eps1, "seed=2"], 0.66, 0.99),
    ]
    for folder, overrides, accuracy, epsilon in runs:
        write_run(tmp_path / "sweep" / folder, overrides, accuracy, epsilon)
    found = collect_runs(tmp_path / "sweep").set_index("run")
    assert found.loc["rule/0", "config"]["finetune.local_epochs"] == "auto"
    assert found.loc["set/0", "config"]["finetune.local_epochs"] == "6"
    fed_dp = "federated, record-level DP"
    assert found.loc["rule/0", "setting"] == f"{fed_dp}, local_epochs=auto"
    assert found.loc["set/0", "setting"] == f"{fed_dp}, local_epochs=6"
    # A run folder from before budget_rule_keys: the rule's value reads `auto`.
    resolved = tmp_path / "sweep" / "set" / "0" / "resolved_config.yaml"
    config = yaml.safe_load(resolved.read_text())
    del config["budget_rule_keys"]
    resolved.write_text(yaml.safe_dump(config))
    found = collect_runs(tmp_path / "sweep").set_index("run")
    assert found.loc["set/0", "config"]["finetune.local_epochs"] == "auto"
    assert set(found["setting"]) == {fed_dp}


def test_report_writes_csv_markdown_and_plot(sweep: Path, tmp_path: Path) -> None:
    paths = write_report(sweep, tmp_path / "out")
    csv = pd.read_csv(paths["csv"])
    assert sorted(csv["run"]) == sorted(folder for folder, *_ in RUNS)
    assert csv.loc[csv["run"] == "dp/2", "final_accuracy"].item() == 0.70
    markdown = paths["markdown"].read_text()
    assert "| federated, record-level DP | 1 | 2 | 0.6200 ± 0.0283 |" in markdown
    assert paths["plot"].stat().st_size > 10_000


def test_the_title_counts_one_run_and_names_the_folder_given_as_dot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: "1 runs under ", the name of "." being empty.
    folder, overrides, accuracy, epsilon = RUNS[0]
    write_run(tmp_path / "my-sweep" / folder, overrides, accuracy, epsilon)
    monkeypatch.chdir(tmp_path / "my-sweep")
    paths = write_report(Path("."), tmp_path / "out")
    title = paths["markdown"].read_text().splitlines()[0]
    assert title == "# Privacy-utility sweep: 1 run under my-sweep"


def test_unfinished_and_failed_runs_are_skipped(sweep: Path) -> None:
    (sweep / "dp" / "0" / "summary.json").unlink()
    failed = sweep / "dp" / "1" / "summary.json"
    # A run that failed after its start writes a summary with the start's
    # accuracy: averaged in, it would read as a trained seed.
    summary = {**json.loads(failed.read_text()), "status": "failed"}
    failed.write_text(json.dumps(summary))
    assert sorted(collect_runs(sweep)["run"]) == sorted(
        folder for folder, *_ in RUNS if folder not in ("dp/0", "dp/1")
    )


def test_the_stated_guarantee_is_the_epsilon_spent_even_when_it_is_zero(
    tmp_path: Path,
) -> None:
    # A DP run's summary states the largest client epsilon; 0.0 (nothing
    # charged) is a figure, not a missing one to be read from elsewhere.
    runs = [("stated", 0.0, 0.0), ("older", None, 0.0), ("charged", 7.9, 7.9)]
    for folder, stated, charged in runs:
        run_dir = tmp_path / "sweep" / folder
        write_run(run_dir, ["privacy.target_epsilon=8"], 0.5, charged)
        summary = json.loads((run_dir / "summary.json").read_text())
        if stated is not None:
            summary["privacy_guarantee"] = {"level": "record", "epsilon": stated}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    spent = collect_runs(tmp_path / "sweep").set_index("run")["epsilon_spent"]
    assert spent.to_dict() == {"charged": 7.9, "older": 0.0, "stated": 0.0}


def test_an_older_summary_without_a_statement_counts_its_clients_charges(
    tmp_path: Path,
) -> None:
    # A summary from before privacy_guarantee: a client whose last updates
    # were refused reported 2.5 while its ledger was charged 3.1.
    run_dir = tmp_path / "sweep" / "older"
    write_run(run_dir, ["privacy.target_epsilon=8"], 0.5, 2.5)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("privacy_guarantee", None)
    summary["clients"][0]["ledger_epsilon"] = 3.1
    (run_dir / "summary.json").write_text(json.dumps(summary))
    spent = collect_runs(tmp_path / "sweep").set_index("run")["epsilon_spent"]
    assert spent.to_dict() == {"older": 3.1}


def test_a_summary_that_states_no_epsilon_for_an_unread_ledger_keeps_none(
    tmp_path: Path,
) -> None:
    # Its clients reported 2.5, but a ledger holding charges could not be
    # read when it ended: the sweep must not fill in the reports' figure.
    run_dir = tmp_path / "sweep" / "unread"
    write_run(run_dir, ["privacy.target_epsilon=8"], 0.5, 2.5)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["privacy_guarantee"] = {
        "level": "record",
        "epsilon": None,
        "unstated": "the privacy ledger of client 1 could not be read",
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    spent = collect_runs(tmp_path / "sweep").set_index("run")["epsilon_spent"]
    assert spent.isna().all() and list(spent.index) == ["unread"]


def test_the_command_prints_its_warnings_as_fedmodels_lines(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, they reached the console only through the root handler Opacus'
    # logging.basicConfig sets up ("12/02/2026 10:12:27:WARNING:..."), or not
    # at all where the root logger had a handler already.
    (sweep / "dp" / "0" / "summary.json").unlink()
    assert run_command(["sweep-report", str(sweep)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(
        re.fullmatch(r"\d\d:\d\d:\d\d fedmodel skipping .*dp/0.*", line)
        for line in lines
    ), lines


def test_runs_differing_in_any_other_setting_are_not_averaged(
    sweep: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Beside the epsilon-1 seeds at the default learning rate, one at 0.5:
    # a setting of its own, not a third seed.
    write_run(
        sweep / "lr" / "0",
        ["privacy.target_epsilon=1", "seed=1", "finetune.learning_rate=0.5"],
        0.40,
        0.99,
    )
    table = aggregate(collect_runs(sweep)).set_index(["setting", "target_epsilon"])
    fed_dp = "federated, record-level DP"
    assert table.loc[(f"{fed_dp}, finetune.learning_rate=0.5", 1.0)]["runs"] == 1
    default = table.loc[(f"{fed_dp}, finetune.learning_rate=auto", 1.0)]
    assert (default["seeds"], default["accuracy_mean"]) == (2, pytest.approx(0.62))
    # One name at every budget: the epsilon-8 runs are the default's too.
    assert table.loc[(f"{fed_dp}, finetune.learning_rate=auto", 8.0)]["seeds"] == 2
    # The same seed twice: averaged as two runs, said in the table and the log.
    write_run(sweep / "again" / "0", ["privacy=off", "seed=1"], 0.84, None)
    with caplog.at_level("WARNING", logger="fedmodel.research.sweep"):
        table = aggregate(collect_runs(sweep))
    assert "repeat a seed" in caplog.text and "again/0" in caplog.text
    assert "| federated, non-private | - | 2 (3 runs) |" in markdown_table(table)


@pytest.mark.parametrize("problem", ["missing", "file", "empty", "corrupt"])
def test_bad_sweep_folders_are_clear_errors(
    sweep: Path, tmp_path: Path, problem: str
) -> None:
    target = {
        "missing": tmp_path / "nope",
        "file": sweep / "dp" / "0" / "summary.json",
        "empty": tmp_path,
        "corrupt": sweep,
    }[problem]
    if problem == "empty":
        target = tmp_path / "empty"
        target.mkdir()
    if problem == "corrupt":
        (sweep / "off" / "1" / "summary.json").write_text("{not json")
    expected = {
        "missing": "does not exist",
        "file": "not a sweep folder",
        "empty": "no finished run folder",
        "corrupt": "summary.json cannot be read at line 1",
    }[problem]
    # Without --out the report goes to the sweep folder: a file given there
    # was refused as --out's, an option the user never gave.
    with pytest.raises(FedmodelError, match=expected):
        write_report(target, target)


def test_an_out_folder_that_cannot_be_written_is_one_clear_error(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, mkdir's FileExistsError surfaced as a traceback with exit 1.
    a_file = sweep / "dp" / "0" / "summary.json"
    before = a_file.read_bytes()
    assert run_command(["sweep-report", str(sweep), "--out", str(a_file)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel sweep-report: error: --out: the report folder {a_file} cannot "
        f"be used: {a_file} is a file, not a folder; choose a folder you can write "
        "(e.g. --out=reports/my-sweep) or fix its permissions"
    )
    assert a_file.read_bytes() == before


def test_cli_report_exits_2_without_traceback(tmp_path: Path) -> None:
    fedmodel = Path(sys.executable).parent / "fedmodel"
    done = subprocess.run(
        [str(fedmodel), "report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_federation_reference_is_the_centralized_run_of_the_same_training(
    sweep: Path,
) -> None:
    # A second centralized DP run at epsilon 8, over more rounds and found
    # first: the federated runs' reference is still the one of their rounds.
    write_run(
        sweep / "central" / "0b",
        [*CENTRALIZED, "privacy.target_epsilon=8", "seed=1", "num_rounds=3"],
        0.50,
        7.99,
    )
    table = aggregate(collect_runs(sweep)).set_index(["setting", "target_epsilon"])
    fed_dp = table.loc[("federated, record-level DP", 8.0)]
    assert fed_dp["federation_cost"] == pytest.approx(100 * (0.85 - 0.72))
    assert fed_dp["federation_note"] is None
    # The same where they differ in a key no column holds: the learning rate.
    shutil.rmtree(sweep / "central" / "0b")
    write_run(
        sweep / "central" / "0b",
        [*CENTRALIZED, "privacy.target_epsilon=8", "finetune.learning_rate=0.5"],
        0.50,
        7.99,
    )
    table = aggregate(collect_runs(sweep)).set_index(["setting", "target_epsilon"])
    fed_dp = table.loc[("federated, record-level DP", 8.0)]
    assert fed_dp["federation_cost"] == pytest.approx(100 * (0.85 - 0.72))


def test_several_equal_references_leave_the_cost_out_and_are_named(
    sweep: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two centralized DP runs at epsilon 8 that differ only in their
    # learning rate, which the federated runs share with neither: picking
    # one would state a cost of 13 or of -2 points at random.
    shutil.rmtree(sweep / "central" / "1")
    for folder, rate, accuracy in (("0b", 0.5, 0.70), ("1", 0.3, 0.85)):
        overrides = [*CENTRALIZED, "privacy.target_epsilon=8"]
        rate_set = f"finetune.learning_rate={rate}"
        write_run(sweep / "central" / folder, [*overrides, rate_set], accuracy, 7.99)
    with caplog.at_level("WARNING", logger="fedmodel.research.sweep_report"):
        paths = write_report(sweep, tmp_path / "out")
    table = aggregate(collect_runs(sweep)).set_index(["setting", "target_epsilon"])
    fed_dp = table.loc[("federated, record-level DP", 8.0)]
    assert pd.isna(fed_dp["federation_cost"])
    candidates = [
        "centralized, record-level DP, finetune.learning_rate=0.3",
        "centralized, record-level DP, finetune.learning_rate=0.5",
    ]
    note = (
        "no federation cost for 'federated, record-level DP' at target epsilon 8: "
        "2 centralized settings could be its reference and not one alone agrees "
        "with it on the config keys they differ in (finetune.learning_rate): "
    )
    assert fed_dp["federation_note"].startswith(note)
    assert all(name in fed_dp["federation_note"] for name in candidates)
    markdown = paths["markdown"].read_text()
    assert f"- {note}" in markdown
    assert note in caplog.text
    # The rows without a note gave a line `- nan` each, and a warning `nan`.
    assert "\n- nan\n" not in markdown
    assert "nan" not in [record.getMessage() for record in caplog.records]
    # The non-private federated runs keep their one centralized reference.
    off = table.xs("federated, non-private", level="setting").iloc[0]
    assert off["federation_cost"] == pytest.approx(100 * (0.90 - 0.81))


def test_the_table_states_the_epsilon_spent_rounded_up(tmp_path: Path) -> None:
    # 0.9871 was shown as 0.987, less than the run spent.
    write_run(tmp_path / "sweep" / "dp", ["privacy.target_epsilon=1"], 0.6, 0.9871)
    table = markdown_table(aggregate(collect_runs(tmp_path / "sweep")))
    assert " | 0.988 | " in table


def test_a_sweep_without_a_non_private_run_says_why_no_privacy_cost(
    tmp_path: Path, sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A sweep of budgets alone showed `-` in every row's privacy cost, with
    # no word of why: the cost needs a privacy=off run of the same training.
    for folder, overrides, accuracy, epsilon in RUNS[:4]:
        write_run(tmp_path / "budgets" / folder, overrides, accuracy, epsilon)
    assert run_command(["sweep-report", str(tmp_path / "budgets")]) == 0
    out, err = capsys.readouterr()
    note = (
        "- no privacy cost (-) in any row: it is the accuracy lost against a "
        "non-private run of the same kind and data, and the sweep holds no "
        "privacy=off run. To get it, run the sweep's overrides again with "
        "privacy=off and without privacy.target_epsilon, into a new folder under "
        "the sweep's (`fedmodel simulate --multirun OVERRIDES privacy=off "
        "hydra.sweep.dir=SWEEP_DIR/NEW`), then report SWEEP_DIR again"
    )
    lines = out.splitlines()
    rows = [line for line in lines if line.startswith("| federated")]
    assert len(rows) == 2 and all(row.split(" | ")[7] == "-" for row in rows)
    # Under the table, once.
    assert lines[lines.index(rows[-1]) + 2] == note
    assert (out + err).count(note) == 1
    markdown = (tmp_path / "budgets" / "sweep_report.md").read_text()
    assert markdown.count(f"\n{note}\n") == 1
    # Not where a row has its cost, nor where no run is private.
    assert (
        "no privacy cost"
        not in write_report(sweep, tmp_path / "all")["markdown"].read_text()
    )
    for folder, overrides, accuracy, epsilon in RUNS[4:6]:
        write_run(tmp_path / "off" / folder, overrides, accuracy, epsilon)
    off = write_report(tmp_path / "off", tmp_path / "off-report")["markdown"]
    assert "no privacy cost" not in off.read_text()


def test_a_sweep_without_a_centralized_run_says_why_no_federation_cost(
    tmp_path: Path, sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Federated runs alone showed `-` in every row's federation cost, with
    # no word of why: the cost needs a centralized run (num_clients=1).
    for folder, overrides, accuracy, epsilon in RUNS[:6]:
        write_run(tmp_path / "fed" / folder, overrides, accuracy, epsilon)
    assert run_command(["sweep-report", str(tmp_path / "fed")]) == 0
    out, err = capsys.readouterr()
    note = (
        "- no federation cost (-) in any row: it is the accuracy lost against a "
        "centralized run (one client holding every training record) of the same "
        "task at the same privacy level and budget, and the sweep holds no "
        "centralized run (num_clients=1). To get it, run the sweep's overrides "
        "again with experiment=centralized and without num_clients, into a new "
        "folder under the sweep's (`fedmodel simulate --multirun OVERRIDES "
        "experiment=centralized hydra.sweep.dir=SWEEP_DIR/NEW`), then report "
        "SWEEP_DIR again"
    )
    lines = out.splitlines()
    rows = [line for line in lines if line.startswith("| federated")]
    assert len(rows) == 3 and all(row.split(" | ")[8] == "-" for row in rows)
    assert lines[lines.index(rows[-1]) + 2] == note
    assert (out + err).count(note) == 1
    markdown = (tmp_path / "fed" / "sweep_report.md").read_text()
    assert markdown.endswith(f"\n{note}\n")
    # Not where some run is centralized, nor where every run is.
    assert (
        "no federation cost (-) in any row"
        not in write_report(sweep, tmp_path / "all")["markdown"].read_text()
    )
    assert "federated setting" not in markdown
    for folder, overrides, accuracy, epsilon in RUNS[6:]:
        write_run(tmp_path / "central" / folder, overrides, accuracy, epsilon)
    central = write_report(tmp_path / "central", tmp_path / "central-report")
    assert "no federation cost" not in central["markdown"].read_text()
    # Client-level DP rows have no centralized reference: the line asked for
    # centralized runs of their overrides too, and for a sweep of them alone
    # it named runs that fill nothing.
    write_run(tmp_path / "fed" / "cl", ["privacy=central"], 0.7, 7.9)
    markdown = write_report(tmp_path / "fed", tmp_path / "fed-cl")["markdown"]
    text = markdown.read_text()
    assert "sweep's overrides (the client-level DP settings aside: " in text
    write_run(tmp_path / "cl-only" / "0", ["privacy=central"], 0.7, 7.9)
    alone = write_report(tmp_path / "cl-only", tmp_path / "cl-report")["markdown"]
    text = alone.read_text()
    assert "no federation cost (-) in any row" not in text
    assert "no run to add for it" in text


def test_private_settings_without_their_non_private_run_are_named(
    tmp_path: Path, sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The local_epochs=3 row had `-` for its privacy cost with no word of
    # why, though the sweep holds a privacy=off run (at the rule's epochs).
    rule = "finetune.local_epochs=null"
    runs = [
        ("dp/0", [rule, "privacy.target_epsilon=1"], 0.60, 0.99),
        ("off/0", [rule, "privacy=off"], 0.80, None),
        ("dp3/0", ["finetune.local_epochs=3", "privacy.target_epsilon=8"], 0.65, 7.9),
        ("dp3/1", ["finetune.local_epochs=3", "privacy.target_epsilon=1"], 0.55, 0.9),
    ]
    for folder, overrides, accuracy, epsilon in runs:
        write_run(tmp_path / "epochs" / folder, overrides, accuracy, epsilon)
    assert run_command(["sweep-report", str(tmp_path / "epochs")]) == 0
    out, err = capsys.readouterr()
    note = (
        "- no privacy cost (-) for 1 private setting: it is the accuracy lost "
        "against a non-private run of the same kind and data, and no privacy=off "
        "run in the sweep has the same kind and data: 'federated, record-level "
        "DP, local_epochs=3' at target epsilon 1, 8 differs from 'federated, "
        "non-private, local_epochs=auto' in local_epochs (3 against auto). To get "
        "it, run its overrides again with privacy=off and without "
        "privacy.target_epsilon, into a new folder under the sweep's (`fedmodel "
        "simulate --multirun OVERRIDES privacy=off hydra.sweep.dir=SWEEP_DIR/NEW`)"
        ", then report SWEEP_DIR again"
    )
    lines = out.splitlines()
    three = [line for line in lines if "local_epochs=3 |" in line]
    assert len(three) == 2 and all(row.split(" | ")[7] == "-" for row in three)
    assert (out + err).count(note) == 1
    markdown = (tmp_path / "epochs" / "sweep_report.md").read_text()
    assert markdown.count(f"\n{note}\n") == 1
    assert "no privacy cost (-) in any row" not in markdown
    # Two settings, one line: the centralized DP run without its
    # non-private centralized run differs in the client columns.
    shutil.rmtree(sweep / "central" / "0")
    markdown = write_report(sweep, tmp_path / "out")["markdown"].read_text()
    (line,) = [line for line in markdown.splitlines() if "no privacy cost" in line]
    assert line.startswith("- no privacy cost (-) for 1 private setting: ")
    assert (
        "'centralized, record-level DP' at target epsilon 8 differs from "
        "'federated, non-private' in kind (centralized against federated), "
        "num_clients (1 against " in line
    )


def test_federated_settings_without_their_centralized_run_are_named(
    tmp_path: Path, sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fixture's federated DP row at epsilon 1 had `-` for its federation
    # cost with no word of why: the sweep's centralized runs are non-private
    # and DP at epsilon 8 alone.
    assert run_command(["sweep-report", str(sweep)]) == 0
    out, err = capsys.readouterr()
    cost = (
        "it is the accuracy lost against a centralized run (one client holding "
        "every training record) of the same task at the same privacy level and "
        "budget, and none of the sweep's centralized runs ("
    )
    to_get = (
        "overrides again at the budgets named with experiment=centralized and "
        "without num_clients, into a new folder under the sweep's (`fedmodel "
        "simulate --multirun OVERRIDES experiment=centralized "
        "hydra.sweep.dir=SWEEP_DIR/NEW`), then report SWEEP_DIR again"
    )
    note = (
        f"- no federation cost (-) for 1 federated setting: {cost}'centralized, "
        "non-private'; 'centralized, record-level DP' at target epsilon 8) has "
        "its task, privacy level and budget: 'federated, record-level DP' at "
        f"target epsilon 1. To get it, run its {to_get}"
    )
    cells = [line.split(" | ") for line in out.splitlines() if line[:2] == "| "]
    costs = {(row[0][2:], row[1]): row[8] for row in cells}
    assert costs[("federated, record-level DP", "1")] == "-"
    assert costs[("federated, record-level DP", "8")] == "13.0"
    assert (out + err).count(note) == 1 and note not in err
    markdown = (sweep / "sweep_report.md").read_text()
    assert markdown.count(f"\n{note}\n") == 1
    # Without the non-private centralized run: the non-private federated
    # row too, in the same line, named without a budget.
    shutil.rmtree(sweep / "central" / "0")
    markdown = write_report(sweep, tmp_path / "out")["markdown"].read_text()
    assert (
        "- no federation cost (-) for 2 federated settings: "
        f"{cost}'centralized, record-level DP' at target epsilon 8) has their "
        "task, privacy level and budget: 'federated, record-level DP' at target "
        f"epsilon 1; 'federated, non-private'. To get it, run their {to_get}\n"
    ) in markdown
    # A row whose cost is out for several equal references keeps its own note
    # and is not named; client-level DP rows have a line of their own.
    shutil.rmtree(sweep / "central" / "1")
    for folder, rate in (("1", 0.3), ("2", 0.5)):
        overrides = [*CENTRALIZED, "privacy.target_epsilon=8"]
        rate_set = f"finetune.learning_rate={rate}"
        write_run(sweep / "central" / folder, [*overrides, rate_set], 0.8, 7.99)
    write_run(
        sweep / "cl" / "0", ["privacy=central", "privacy.target_epsilon=8"], 0.7, 7.9
    )
    markdown = write_report(sweep, tmp_path / "out")["markdown"].read_text()
    lines = [line for line in markdown.splitlines() if "no federation cost" in line]
    assert len(lines) == 3
    assert lines[0].startswith("- no federation cost for 'federated, record-level DP")
    assert lines[1].startswith("- no federation cost (-) for 2 federated settings")
    assert lines[1].endswith(
        "has their task, privacy level and budget: 'federated, record-level DP' "
        f"at target epsilon 1; 'federated, non-private'. To get it, run their {to_get}"
    )
    assert lines[2] == (
        "- no federation cost (-) for 1 client-level DP setting, and no run to add "
        "for it: 'federated, client-level DP' at target epsilon 8. A centralized "
        "run is one client holding every training record, so client-level DP "
        "there would hide the whole training set rather than one client among "
        "several: a stronger guarantee, and its gap would measure that as well as "
        "federation"
    )
    # A centralized run of another task at epsilon 1 is no reference either:
    # where the tasks differ, each setting named says its own.
    eps1 = [*CENTRALIZED, "privacy.target_epsilon=1", "task=hospital"]
    write_run(sweep / "central" / "3", eps1, 0.8, 0.99)
    markdown = write_report(sweep, tmp_path / "out")["markdown"].read_text()
    (line,) = [line for line in markdown.splitlines() if "2 federated" in line]
    assert (
        "'centralized, record-level DP, finetune.learning_rate=auto' at target "
        "epsilon 1 (task=hospital)) has their task, privacy level and budget: "
        "'federated, record-level DP' at target epsilon 1 (task=bank); "
        "'federated, non-private' (task=bank). To get it"
    ) in line
    # A centralized client-level DP run is no reference for the federated
    # client-level row: before, it gave that row a federation cost that
    # measured the stronger guarantee (the whole training set hidden) too.
    write_run(
        sweep / "central" / "4",
        [*CENTRALIZED, "privacy=central", "privacy.target_epsilon=8"],
        0.5,
        7.9,
    )
    markdown = write_report(sweep, tmp_path / "out")["markdown"].read_text()
    assert "for 1 client-level DP setting, and no run to add" in markdown
    (row,) = [r for r in markdown.splitlines() if r.startswith("| federated, client")]
    assert row.split(" | ")[8] == "-", row  # the federation cost column
