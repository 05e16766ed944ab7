"""A site's cells as other tools type them, and label descriptions read with them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fedmodel.data.files import load_site_file
from fedmodel.data.label_form import composed_labels
from fedmodel.data.label_warnings import warn_similar_labels
from fedmodel.data.shared_texts import warn_shared_texts
from fedmodel.data.tasks import load_task
from fedmodel.data.text_inputs import read_input_texts
from fedmodel.errors import FedmodelError
from tests.unit.test_data_files import NORMALIZE, _run, _task


def _jsonl(path: Path, records: list[tuple[object, object]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in records)
    )
    return path


@pytest.fixture
def test_csv(tmp_path: Path) -> Path:
    path = tmp_path / "test.csv"
    path.write_text("text,label\ngood,1\nbad,2\n")
    return path


def test_a_text_that_is_no_string_is_refused_by_row(
    tmp_path: Path, test_csv: Path
) -> None:
    # str() would train on "True" for JSON's true and "100000.0" for 1e5.
    site = tmp_path / "site.jsonl"
    records = [("chest pain", 1), (True, 2), (1e5, 1), ("hip", 2)]
    site.write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in records)
    )
    pattern = (
        r"site.jsonl has 2 texts that are numbers or true/false, not "
        r"strings, in column 'text' at rows 2, 3 .*write them as strings"
    )
    with pytest.raises(FedmodelError, match=pattern) as trained:
        load_task(_task([site], test_csv), seed=0)
    # predict's --input and the transfer file: the same rule, the same line.
    with pytest.raises(FedmodelError, match=pattern) as read:
        read_input_texts(site, key="--input")
    assert str(trained.value).startswith("task.train_files[0]: file ")
    assert str(read.value) == str(trained.value).replace(
        "task.train_files[0]", "--input"
    )
    ids = tmp_path / "ids.parquet"
    pd.DataFrame({"text": [101, 102], "label": [1, 2]}).to_parquet(ids)
    with pytest.raises(FedmodelError, match=r"ids.parquet has 2 texts that are"):
        load_task(_task([ids], test_csv), seed=0)


def test_labels_that_are_one_number_written_two_ways_are_named(
    tmp_path: Path, test_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One site's export wrote the code column as floats: 1 and 1.0 would be
    # two classes, and nothing else would say so.
    a = tmp_path / "a.csv"
    a.write_text("text,label\nchest pain,1\nbroken hip,2\n")
    b = tmp_path / "b.csv"
    b.write_text("text,label\nheart attack,1.0\nhip fracture,2.0\nrash,1.10\n")
    data = load_task(_task([a, b], test_csv), seed=0)
    assert data.label_names == ("1", "1.0", "1.10", "2", "2.0")
    with caplog.at_level("WARNING", logger="fedmodel.data.label_warnings"):
        warn_similar_labels(data)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.startswith("2 groups of labels are one number written two ways")
    assert "'1' / '1.0'; '2' / '2.0'" in warned
    assert "1.10" not in warned  # a section's code, not a float's


def test_label_descriptions_are_checked_with_the_files(
    tmp_path: Path, test_csv: Path
) -> None:
    # Read with the files, before any Flower start-up (the server's own read
    # comes after it, and would leave a run folder behind).
    site = tmp_path / "site.csv"
    site.write_text("text,label\nchest pain,cardio\nbroken hip,ortho\n")
    test_csv.write_text("text,label\ngood,cardio\nbad,ortho\n")
    described = tmp_path / "labels.csv"
    described.write_text("label,description\nCardio,heart\northo,bones\n")
    task = _task([site], test_csv, label_descriptions=str(described))
    pattern = (
        r"labels.csv has no description of the label \['cardio'\] \(it "
        r"describes 'Cardio' \(the class 'cardio'\?\), which the task has "
        r"not; .*case counting\)"
    )
    with pytest.raises(FedmodelError, match=pattern):
        load_task(task, seed=0)


def test_a_description_of_a_class_written_another_way_is_paired_with_it(
    tmp_path: Path, test_csv: Path
) -> None:
    # The refusal listed '7' beside '007' without a word, where the warning
    # of unused descriptions already paired them.
    site = tmp_path / "site.csv"
    site.write_text("text,label\nchest pain,007\nbroken hip,12\n")
    test_csv.write_text("text,label\ngood,007\nbad,12\n")
    described = tmp_path / "labels.csv"
    described.write_text("label,description\n7,heart\n12,bones\n99,skin\n")
    task = _task([site], test_csv, label_descriptions=str(described))
    with pytest.raises(FedmodelError) as refused:
        load_task(task, seed=0)
    assert (
        "has no description of the label ['007'] (it describes '7' (the class "
        "'007'?), '99', which the task has not;"
    ) in str(refused.value)


def test_a_description_that_is_no_string_is_refused_by_row(
    tmp_path: Path, test_csv: Path
) -> None:
    # A description is a text the encoder reads: JSON's 5 or true would be
    # described as "5" or "True", as a text would be trained on.
    site = tmp_path / "site.csv"
    site.write_text("text,label\nchest pain,1\nbroken hip,2\n")
    described = tmp_path / "labels.jsonl"
    described.write_text(
        json.dumps({"label": "1", "description": "heart"})
        + "\n"
        + json.dumps({"label": "2", "description": True})
        + "\n"
    )
    task = _task([site], test_csv, label_descriptions=str(described))
    pattern = (
        r"labels.jsonl has 1 description that is a number or true/false, "
        r"not a string, in column 'description' at row 2 .*write it as a string "
        r"or remove that row"
    )
    with pytest.raises(FedmodelError, match=pattern):
        load_task(task, seed=0)


def test_a_label_in_either_unicode_form_is_one_label(
    tmp_path: Path, test_csv: Path
) -> None:
    # One site's export wrote "é" as e plus a combining accent (NFD): two
    # classes that print alike, and no warning could tell them apart.
    composed, decomposed = "Cardiolog\u00eda", "Cardiologi\u0301a"
    a = tmp_path / "a.csv"
    a.write_text(f"text,label\nchest pain,{composed}\nbroken hip,Orto\n")
    b = tmp_path / "b.csv"
    b.write_text(f"text,label\nheart attack,{decomposed}\nhip fracture,Orto\n")
    test_csv.write_text(f"text,label\npalpitations,{decomposed}\nfall,Orto\n")
    data = load_task(_task([a, b], test_csv), seed=0)
    assert data.label_names == (composed, "Orto")
    assert data.train["label"] == [0, 1, 0, 1]
    listed = load_task(_task([a, b], test_csv, labels=[decomposed, "Orto"]), seed=0)
    assert listed.label_names == (composed, "Orto")
    task = _task([a], test_csv, labels=[decomposed, "Orto"])
    site = load_site_file(a, task=task, label_names=(decomposed, "Orto"), key="k")
    assert site["label"] == [0, 1]


def test_task_labels_are_read_one_way_at_the_server_and_at_a_site() -> None:
    # The server's names (files.py), a site's (site_data.py) and the set a
    # site checks against its labels-file (site.py) all read them so.
    listed = ["Cardiologi\u0301a", 3, "Orto"]
    assert composed_labels(listed) == ("Cardiolog\u00eda", "3", "Orto")


def test_a_label_that_is_true_or_false_is_refused_and_a_number_is_its_text(
    tmp_path: Path, test_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # JSON's true would be the class "True", which a CSV of the same records
    # writes "true": one class in two, from two sites' exports.
    flags = _jsonl(tmp_path / "flags.jsonl", [("a", True), ("b", "x"), ("c", False)])
    pattern = (
        r"task.train_files\[0\]: file .*flags.jsonl has 2 labels that are "
        r"true/false, not text, in column 'label' at rows 1, 3 .*write them "
        r'as strings \("true" / "false"'
    )
    with pytest.raises(FedmodelError, match=pattern):
        load_task(_task([flags], test_csv), seed=0)
    parquet = tmp_path / "flags.parquet"
    pd.DataFrame({"text": ["a", "b"], "label": [True, False]}).to_parquet(parquet)
    with pytest.raises(FedmodelError, match=r"flags.parquet has 2 labels that are"):
        load_task(_task([parquet], test_csv), seed=0)
    # A number is a code: JSON 1 and "1" are one label, and so are a float
    # column's 2.0 and 2; the text "2.0" is still named as the same number.
    codes = _jsonl(tmp_path / "codes.jsonl", [("d", 1), ("e", "1"), ("f", "2.0")])
    floats = tmp_path / "floats.parquet"
    pd.DataFrame({"text": ["g", "h"], "label": [2.0, 1.0]}).to_parquet(floats)
    data = load_task(_task([codes, floats], test_csv), seed=0)
    assert data.label_names == ("1", "2", "2.0")
    assert data.train["label"] == [0, 0, 2, 1, 0]
    with caplog.at_level("WARNING", logger="fedmodel.data.label_warnings"):
        warn_similar_labels(data)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert "one number written two ways" in warned and "'2' / '2.0'" in warned


def test_texts_differing_only_in_surrounding_spaces_are_one_record(
    tmp_path: Path, test_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The tokenizer drops the spaces, and `fedmodel predict` strips them:
    # "awful" and "awful " are one record to the model, held twice.
    a = _jsonl(tmp_path / "a.jsonl", [("awful", 1), ("awful ", 1), ("fine", 2)])
    b = _jsonl(tmp_path / "b.jsonl", [("\tdire\n", 2), ("so so", 1)])
    task = _task([a, b], test_csv)
    data = load_task(task, seed=0)
    # The records stay as written: a ledger's fingerprint was taken of them.
    assert data.train["text"][:4] == ["awful", "awful ", "fine", "\tdire\n"]
    texts = tmp_path / "public.txt"
    texts.write_text("dire\nnew\n")
    run = _run(task, transfer_file=texts)
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        read = read_input_texts(texts, key="k").texts
        warn_shared_texts(run, data, normalize=NORMALIZE, distill_texts=read)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2, warned
    assert warned[0].startswith("task.train_files[0] (")
    assert "holds 1 record repeating the text" in warned[0]
    assert warned[1].startswith("1 of the 2 records of task.train_files[1] (")
    assert "distill.transfer_file" in warned[1]


def test_a_missing_cell_is_named_by_its_row_and_the_line_it_starts_on(
    tmp_path: Path, test_csv: Path
) -> None:
    # Before: "at row 3" alone, in a CSV of multi-line notes where record 3
    # starts on line 7: an editor's line 3 is inside the first note.
    notes = '"chest pain,\nworse on exertion",1\n"hip\n\nafter a fall",2\n'
    site = tmp_path / "site.csv"
    site.write_text("text,label\n" + notes + '"rash\nspreading",\n\nfever,1\n')
    with pytest.raises(FedmodelError) as refused:
        load_task(_task([site], test_csv), seed=0)
    assert (
        "has 1 label that is missing (null, a NaN number, blank, or the text "
        "'NaN' in any case) in column 'label' at row 3 (records counted from 1, "
        "not lines: no header or blank line counts), starting on line 7 of the "
        "file; fill it in or remove that row"
    ) in str(refused.value)
    # JSONL: a record a line, blank lines skipped; the line is said.
    lines = ['{"text": "a", "label": 1}', "", '{"text": "b", "label": null}']
    (tmp_path / "site.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(FedmodelError, match=r"at row 2 \(.*\), starting on line 3 "):
        load_task(_task([tmp_path / "site.jsonl"], test_csv), seed=0)
    # Parquet has no lines: the row alone.
    table = pd.DataFrame({"text": ["a", "b"], "label": ["1", None]})
    table.to_parquet(tmp_path / "site.parquet")
    with pytest.raises(FedmodelError, match=r"at row 2 \([^)]*\); fill it in"):
        load_task(_task([tmp_path / "site.parquet"], test_csv), seed=0)
