"""A site's cells as other tools type them, and label descriptions read with them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fedmodel.data.files import load_site_file
from fedmodel.data.label_warnings import warn_similar_labels
from fedmodel.data.tasks import load_task
from fedmodel.data.text_inputs import read_texts
from fedmodel.errors import FedmodelError
from tests.unit.test_data_files import _task


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
        r"site.jsonl has 2 text\(s\) that are numbers or true/false, not "
        r"strings, in column 'text' at row\(s\) 2, 3 .*write them as strings"
    )
    with pytest.raises(FedmodelError, match=pattern):
        load_task(_task([site], test_csv), seed=0)
    with pytest.raises(FedmodelError, match=r"row 2 .*holds True \(bool\), not a text"):
        read_texts(site, key="--input")
    ids = tmp_path / "ids.parquet"
    pd.DataFrame({"text": [101, 102], "label": [1, 2]}).to_parquet(ids)
    with pytest.raises(FedmodelError, match=r"ids.parquet has 2 text\(s\)"):
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
    assert warned.startswith("2 group(s) of labels are one number written two ways")
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
        r"labels.csv has no description of the label\(s\) \['cardio'\] \(it "
        r"describes \['Cardio'\], which the task has not; .*case counting\)"
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
