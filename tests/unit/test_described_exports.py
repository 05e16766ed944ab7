"""Coded labels read as words: an export keeps the task's label descriptions.

`fedmodel predict` shows each label's description beside its code, and the
model card lists them; an export without them serves exactly as before. A
descriptions file that describes labels no class is gets one warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data import label_descriptions
from fedmodel.data.file_formats import read_table
from fedmodel.data.label_descriptions import (
    class_descriptions,
    read_descriptions,
    warn_unused_descriptions,
)
from fedmodel.data.readable_records import check_readable_records
from fedmodel.federation.server_app import run_federation
from fedmodel.model.load import build_classifier, classifier_config, load_tokenizer
from fedmodel.model.student import build_student
from fedmodel.serve.export import export_classifier, keep_label_descriptions
from fedmodel.serve.model_card import model_card
from tests.conftest import logging_restored, small_settings
from tests.fake_grid import FAKE_GRID_RUN, FakeGrid
from tests.unit.test_model_card import RECORD, card_summary

CODES = ("1", "2", "3")
MEANINGS = {"1": "Abbreviation", "2": "Entity | thing", "3": "Location"}


def _descriptions(folder: Path, rows: str) -> Path:
    path = folder / "labels.csv"
    path.write_text("label,description\n" + rows)
    return path


def _export(folder: Path, *, described: bool) -> Path:
    """A tiny teacher and its student, exported as a run exports them."""
    path = _descriptions(folder, "".join(f"{c},{m}\n" for c, m in MEANINGS.items()))
    settings = small_settings(f"task.label_descriptions={path}")
    model = build_classifier(settings.model, label_names=CODES, seed=3)
    if described:
        described = read_descriptions(settings.task)
        keep_label_descriptions(
            model, class_descriptions(settings.task, CODES, described)
        )
    tokenizer = load_tokenizer(settings.model)
    export_classifier(model, tokenizer, folder / "model", max_length=32)
    student = build_student(model, settings.distill.student)
    export_classifier(
        student, tokenizer, folder / "student", max_length=32, quantize=True
    )
    return folder


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("described"), described=True)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("plain"), described=False)


def _jsonl(model: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    argv = ["predict", "--model", str(model), "--text", "where is Paris"]
    assert run_command([*argv, "--format", "jsonl"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("folder", ["model", "student"])
def test_predict_json_gives_each_label_its_description(
    described: Path, folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The student is served from its int8 ONNX graph: both runtimes read it.
    (row,) = _jsonl(described / folder, capsys)
    assert list(row) == ["text", "label", "description", "probability", "top"]
    assert row["description"] == MEANINGS[row["label"]]
    assert [entry["description"] for entry in row["top"]] == [
        MEANINGS[entry["label"]] for entry in row["top"]
    ]


def test_predict_table_shows_the_description_beside_the_code(
    described: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row a line
    argv = ["predict", "--model", str(described / "model"), "--text", "Paris"]
    assert run_command([*argv, "--runtime", "torch"]) == 0
    out = capsys.readouterr().out
    header = [cell.strip() for cell in out.splitlines()[1].split("┃")]
    assert header[1:-1] == ["text", "label", "description", "probability", "next best"]
    rows = [[c.strip() for c in line.split("│")] for line in out.splitlines()[3:-1]]
    assert rows[0][3] == MEANINGS[rows[0][2]]
    # The next best labels, one a line: `2 (Entity | thing) 0.33`.
    others = [row[5] for row in rows if row[5]]
    assert len(others) == 2
    for other in others:
        code = other.split(" ")[0]
        assert other.startswith(f"{code} ({MEANINGS[code]}) 0.")


def test_an_export_without_descriptions_predicts_as_before(
    plain: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (row,) = _jsonl(plain / "model", capsys)
    assert list(row) == ["text", "label", "probability", "top"]
    assert all(list(entry) == ["label", "probability"] for entry in row["top"])
    monkeypatch.setenv("COLUMNS", "200")
    argv = ["predict", "--model", str(plain / "model"), "--text", "Paris"]
    assert run_command(argv) == 0
    out = capsys.readouterr().out
    assert "description" not in out and "(" not in out


def test_the_model_card_lists_the_descriptions(described: Path, plain: Path) -> None:
    settings = small_settings()
    summary = card_summary(described / "cards", RECORD)
    card = model_card(summary, settings, role="student", folder=described / "student")
    assert (
        "## Labels\n\n| label | description |\n|---|---|\n| `1` | Abbreviation |\n"
        "| `2` | Entity \\| thing |\n| `3` | Location |\n"
    ) in card
    card = model_card(summary, settings, role="teacher", folder=plain / "model")
    assert "## Labels" not in card


def test_a_run_from_an_export_keeps_none_of_its_descriptions(described: Path) -> None:
    # model.path may be an earlier export; its codes' meanings are not this run's.
    settings = small_settings(f"model.path={described / 'model'}")
    config = classifier_config(settings.model, {"num_labels": 2})
    assert not hasattr(config, "label_descriptions")


def test_descriptions_of_labels_no_class_is_are_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = "asthma,a\nJ45,b\nASTHMA,c\nJ45.0,d\nE11,e\n3.0,f\n"
    path = _descriptions(tmp_path, rows)
    task = small_settings(f"task.label_descriptions={path}").task
    with caplog.at_level("WARNING", logger=label_descriptions.__name__):
        warn_unused_descriptions(task, ("asthma", "J45", "3"), read_descriptions(task))
    (warned,) = [record.getMessage() for record in caplog.records]
    assert warned.startswith(
        f"task.label_descriptions: file {path} describes 4 labels the task has "
        "no class of, so their descriptions are unused: 'ASTHMA' (the class "
        "'asthma'?), 'J45.0', 'E11', '3.0' (the class '3'?)."
    )


def test_descriptions_of_the_classes_alone_warn_of_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _descriptions(tmp_path, "asthma,a\nJ45,b\n")
    task = small_settings(f"task.label_descriptions={path}").task
    with caplog.at_level("WARNING", logger=label_descriptions.__name__):
        warn_unused_descriptions(task, ("asthma", "J45"), read_descriptions(task))
        warn_unused_descriptions(small_settings().task, ("asthma",), None)
    assert not caplog.records


def test_a_run_reads_its_descriptions_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process of a simulation read the file five times: in the checks
    # before Flower, with the files task, for the warning of unused
    # descriptions, for the head's start and for the export. It is read with
    # the task's files now, and each of them takes it from there.
    sites = []
    for site in range(2):
        path = tmp_path / f"site{site}.csv"
        rows = "".join(f"site {site} text {i},{i % 3 + 1}\n" for i in range(24))
        path.write_text("text,label\n" + rows)
        sites.append(str(path))
    test = tmp_path / "test.csv"
    test.write_text("text,label\nwhere is Paris,3\nwhat is a noun,1\n")
    described = _descriptions(
        tmp_path, "".join(f"{c},{m}\n" for c, m in MEANINGS.items())
    )
    run = [
        *FAKE_GRID_RUN,
        "task=files",
        "privacy=off",
        "distill=off",
        f"task.train_files=[{','.join(sites)}]",
        f"task.test_file={test}",
        f"task.label_descriptions={described}",
    ]
    settings = settings_from_dict(
        {**compose_config(run), "run_dir": str(tmp_path / "run")}
    )
    reads: list[str] = []

    def counted(path: Path, *, key: str, **kwargs: object) -> object:
        reads.append(key)
        return read_table(path, key=key, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(label_descriptions, "read_table", counted)
    check_readable_records(settings)  # `fedmodel simulate`'s, before Flower
    with logging_restored():
        summary = run_federation(FakeGrid(2), settings)
    assert summary["status"] == "ok"
    assert reads == ["task.label_descriptions"]
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["label_descriptions"] == MEANINGS
