"""`fedmodel privacy-plan` and `simulate` say what was measured of strict files runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.config import settings_from_dict
from fedmodel.research.plan_measured import (
    LABEL_NAMES_DOC,
    MEASURED_SHORT_RECORDS_EPSILON,
    RECORDS_DOC,
    SERVER_FILE_DOC,
    measured_notes,
)
from fedmodel.training.warm_start import NO_SERVER_RECORDS
from tests.conftest import small_config
from tests.unit.test_doc_links import _anchors

ROOT = Path(__file__).resolve().parents[2]

SERVER_FILE_LINE = (
    f"{NO_SERVER_RECORDS}. Measured on the held-out ICD blocks files scenario "
    "(4 sites, no server-held record): a task.validation_file of 5% of the "
    "records lifted epsilon 1 from 0.76 to 0.80-0.82 test accuracy and epsilon 3 "
    "by about 1 point (docs/strict-budgets.md#what-a-small-server-held-file-buys-"
    "where-the-server-holds-nothing)"
)


def _site_files(
    folder: Path, *, per_site: int, labels: tuple[str, str] = ("asthma", "fracture")
) -> list[str]:
    """Two sites of `per_site` records and a test file; their overrides."""
    for site in range(2):
        rows = [f"site {site} note {i},{labels[i % 2]}" for i in range(per_site)]
        (folder / f"site{site}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (folder / "test.csv").write_text(f"text,label\nheld out,{labels[0]}\n")
    return [
        "model=tiny",
        "task=files",
        f"task.train_files=[{folder}/site0.csv,{folder}/site1.csv]",
        f"task.test_file={folder}/test.csv",
    ]


def _notes(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """`fedmodel privacy-plan --json`'s measured notes for `argv`."""
    assert run_command(["privacy-plan", "--json", *argv]) == 0
    notes: list[dict[str, str]] = json.loads(capsys.readouterr().out)["measured_notes"]
    return notes


def test_a_strict_files_plan_says_what_a_server_file_and_more_records_bought(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A hospital team planning its own files at epsilon 1 learned from the
    # plan neither that the server holds no labelled record nor what the
    # project measured of such runs: that was in docs/strict-budgets.md.
    files = _site_files(tmp_path, per_site=600)
    argv = [*files, "privacy.target_epsilon=1"]
    assert run_command(["privacy-plan", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    records_line = (
        "the smallest client trains on 600 records at epsilon 1, 600 records x "
        "epsilon, below the range measured on the held-out ICD blocks files "
        "scenario (4 sites, no server-held record): its sites of 1,069 to 1,532 "
        "records (noise multiplier 14.6 to 15.0 at epsilon 1) kept 0.80 of "
        "non-private accuracy at epsilon 1 and 0.91 at 3. Records x epsilon per "
        "site is what limits it: more records per site (twice as many count about "
        "as twice the budget) or a larger budget moves it (docs/strict-budgets.md"
        "#what-limits-epsilon-1-how-many-records-one-noise-draw-covers)"
    )
    # Under the tables, the last lines, once each.
    assert out[-2:] == [SERVER_FILE_LINE, records_line]
    assert out.count(SERVER_FILE_LINE) == 1 and out[-3].startswith("└")
    assert _notes(argv, capsys) == [
        {"about": "server_file", "line": SERVER_FILE_LINE},
        {"about": "records_per_site", "line": records_line},
    ]
    (tmp_path / "held.csv").write_text("text,label\nkept,asthma\nkept too,fracture\n")
    with_file = [*argv, f"task.validation_file={tmp_path}/held.csv"]
    assert [note["about"] for note in _notes(with_file, capsys)] == ["records_per_site"]
    # 600 x 8 is past the records x epsilon measured short, and 8 past 3.
    assert _notes([*files, "privacy.target_epsilon=8"], capsys) == []
    bank = ["model=tiny", "task.max_train_examples=600", "num_clients=3"]
    assert _notes([*bank, "partition=iid", "privacy.target_epsilon=1"], capsys) == []


def test_the_records_note_holds_up_to_the_held_out_scenarios_largest_site(
    tmp_path: Path,
) -> None:
    settings = settings_from_dict(
        small_config(*_site_files(tmp_path, per_site=4), "privacy.target_epsilon=3")
    )
    assert MEASURED_SHORT_RECORDS_EPSILON == 1_532 * 3

    def about(site_records: list[int]) -> list[str]:
        notes = measured_notes(
            settings, label_names=("asthma", "fracture"), site_records=site_records
        )
        return [note.about for note in notes]

    assert about([1_532, 4_000]) == ["server_file", "records_per_site"]
    assert about([1_533, 4_000]) == ["server_file"]
    central = settings_from_dict(
        small_config(*_site_files(tmp_path, per_site=4), "privacy=central")
    )
    # Said 'within the range measured' of any client up to it, though the
    # held-out sites measured held 1,069 records x epsilon at the least (the
    # smallest at epsilon 1): 50 records at epsilon 8 (400) read as among them.
    strict = settings_from_dict(
        small_config(*_site_files(tmp_path, per_site=4), "privacy.target_epsilon=1")
    )
    for records, where in ((1_068, "below"), (1_069, "within")):
        [note] = measured_notes(
            strict, label_names=("asthma", "fracture"), site_records=[records]
        )[1:]
        assert f"records x epsilon, {where} the range measured on" in note.line
    assert measured_notes(central, label_names=("a", "b"), site_records=[4]) == []


def test_a_strict_plan_of_labels_written_as_numbers_says_what_they_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The run warned of numbers as labels only in its log, once training had
    # begun; the plan showed them quoted and said nothing of their cost.
    argv = [
        *_site_files(tmp_path, per_site=40, labels=("7", "12")),
        "privacy.target_epsilon=1",
    ]
    notes = _notes(argv, capsys)
    assert [note["about"] for note in notes] == [
        "server_file",
        "records_per_site",
        "label_names",
    ]
    assert notes[-1]["line"] == (
        "label '7' has no letter in it and task.label_descriptions is not set: the "
        "head starts untrained, not from the label names. Measured on the held-out "
        "ICD blocks files scenario (4 sites, no server-held record) labelled by "
        "block number: epsilon 1 ended at 0.620 test accuracy, against 0.757 from "
        "the block names and 0.741 with them as task.label_descriptions "
        "(docs/strict-budgets.md#a-public-start-label-names)"
    )
    (tmp_path / "labels.csv").write_text(
        "label,description\n7,Asthma\n12,Fracture of the wrist\n"
    )
    described = [*argv, f"task.label_descriptions={tmp_path}/labels.csv"]
    assert "label_names" not in [note["about"] for note in _notes(described, capsys)]


def test_each_note_names_a_section_the_docs_have() -> None:
    # A renamed heading would leave the notes pointing users nowhere.
    for link in (SERVER_FILE_DOC, RECORDS_DOC, LABEL_NAMES_DOC):
        page, anchor = link.split("#")
        assert anchor in _anchors(ROOT / page), link


def test_a_strict_files_simulation_says_the_notes_but_not_the_servers_line_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # simulate says the plan's notes before round 1, except the server-file
    # one: the server logs NO_SERVER_RECORDS itself as it starts, so the
    # console showed that sentence twice.
    from fedmodel.cli.simulate import _say_plan_lines

    settings = settings_from_dict(
        small_config(*_site_files(tmp_path, per_site=40), "privacy.target_epsilon=1")
    )
    with caplog.at_level("INFO", logger="fedmodel"):
        _say_plan_lines(settings, tmp_path / "run")
    said = [record.getMessage() for record in caplog.records]
    assert not any(NO_SERVER_RECORDS in line for line in said), said
    records = [line.startswith("the smallest client trains on ") for line in said]
    assert records.count(True) == 1, said
