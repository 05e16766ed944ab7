"""One rule for missing cells in every reader; repeated columns and one-class data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedmodel.config import TaskSettings
from fedmodel.data.file_formats import MISSING_RULE, is_missing
from fedmodel.data.files import load_site_file
from fedmodel.data.tasks import load_task
from fedmodel.data.text_inputs import read_input_texts
from fedmodel.errors import FedmodelError
from tests.conftest import group_settings

ROWS = [("fine day", "pos"), ("awful", "neg"), ("so so", "pos")]


def _task(train: list[Path], test: Path, **kwargs: object) -> TaskSettings:
    settings: TaskSettings = group_settings(
        "task",
        "files",
        train_files=[str(p) for p in train],
        test_file=str(test),
        **kwargs,
    )
    return settings


def _write(path: Path, rows: list[tuple[object, object]]) -> Path:
    """Write rows in the format the suffix names, cells exactly as given."""
    texts = [text for text, _ in rows]
    labels = [label for _, label in rows]
    if path.suffix == ".csv":
        lines = ["text,label", *(f"{t},{y}" for t, y in rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif path.suffix == ".jsonl":
        lines = [json.dumps({"text": t, "label": y}) for t, y in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(path)
    return path


@pytest.fixture
def test_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "test.csv", [("good", "pos"), ("bad", "neg")])


def test_the_rule() -> None:
    for value in (None, float("nan"), "", "  ", "NaN", "nan", " NAN ", pd.NA):
        assert is_missing(value), value
    for value in ("NA", "none", "null", "N/A", "0", 0, 0.0, "naan"):
        assert not is_missing(value), value


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("cell", ["NaN", "nan", "", "null-value"])
def test_missing_label_is_refused_in_every_format(
    tmp_path: Path, test_file: Path, suffix: str, cell: object
) -> None:
    value: object = None if cell == "null-value" else cell
    if suffix == ".csv" and value is None:
        value = ""  # a CSV cannot hold a null: an empty cell is its null
    path = _write(tmp_path / f"a{suffix}", [*ROWS, ("late", value)])
    with pytest.raises(FedmodelError) as info:
        load_task(_task([path], test_file), seed=0)
    message = str(info.value)
    assert f"a{suffix}" in message and "row 4" in message
    assert "'label'" in message and MISSING_RULE in message


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_missing_text_follows_the_same_rule(
    tmp_path: Path, test_file: Path, suffix: str
) -> None:
    path = _write(tmp_path / f"a{suffix}", [*ROWS, ("NaN", "neg")])
    pattern = r"1 text that is missing.*'text' at row 4"
    with pytest.raises(FedmodelError, match=pattern):
        load_task(_task([path], test_file), seed=0)


def test_nan_number_in_jsonl_and_parquet_is_missing(
    tmp_path: Path, test_file: Path
) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"text": "x", "label": "pos"}\n{"text": "y", "label": NaN}\n')
    with pytest.raises(FedmodelError, match=r"a.jsonl.*row 2"):
        load_task(_task([jsonl], test_file), seed=0)
    parquet = _write(tmp_path / "b.parquet", [("x", 1.0), ("y", float("nan"))])
    with pytest.raises(FedmodelError, match=r"b.parquet.*row 2"):
        load_task(_task([parquet], test_file), seed=0)


def test_site_file_and_predict_input_follow_the_rule(tmp_path: Path) -> None:
    site = _write(tmp_path / "site.csv", [*ROWS, ("late", "NaN")])
    task = group_settings("task", "files", labels=["pos", "neg"])
    pattern = r"site.csv.*1 label that is missing.*row 4"
    with pytest.raises(FedmodelError, match=pattern):
        load_site_file(site, task=task, label_names=("pos", "neg"), key="data-file")
    # A label the federation does not name: the row, and the line a quoted
    # note's record starts on (record 2 starts on line 4 here).
    noted = tmp_path / "noted.csv"
    noted.write_text('text,label\n"a\nnote",pos\nx,maybe\n', encoding="utf-8")
    with pytest.raises(FedmodelError) as refused:
        load_site_file(noted, task=task, label_names=("pos", "neg"), key="data-file")
    assert str(refused.value) == (
        f"data-file: file {noted}, row 2 (records counted from 1, not lines: no "
        "header or blank line counts), starting on line 4 of the file, column "
        "'label': label 'maybe' is not one of the federation's labels ['pos', "
        "'neg']; fix the row or ask the server operator to add the label to "
        "task.labels"
    )
    texts = _write(tmp_path / "in.jsonl", [("hello", "x"), ("nan", "y")])
    pattern = r"--input: file .*in.jsonl has 1 text that is missing.*row 2 "
    with pytest.raises(FedmodelError, match=pattern):
        read_input_texts(texts, key="--input")


def test_a_missing_text_column_is_worded_as_for_the_training_files(
    tmp_path: Path, test_file: Path
) -> None:
    texts = tmp_path / "in.csv"
    texts.write_text("Text,label\nhello,x\n", encoding="utf-8")
    with pytest.raises(FedmodelError) as read:
        read_input_texts(texts, key="--input", column_option="--text-column")
    assert str(read.value) == (
        f"--input: file {texts} has no text column 'text' ('Text' differs only "
        "in case or spaces) (columns found: ['Text', 'label']); rename the "
        "texts' column to 'text' or name it with --text-column"
    )
    with pytest.raises(FedmodelError) as trained:
        load_task(_task([texts], test_file), seed=0)
    assert str(trained.value).startswith(
        f"task.train_files[0]: file {texts} has no text column 'text' ('Text' "
        "differs only in case or spaces) (columns found: ['Text', 'label']); "
    )
    # One name serves every file: the key only where all of them differ.
    assert str(trained.value).endswith(
        "rename its text column to 'text', or, where every file of the task "
        "names it otherwise, set task.text_column to that name"
    )


def test_a_sites_missing_column_is_fixed_at_the_site_or_by_the_server_operator(
    tmp_path: Path,
) -> None:
    # Before, a site operator was told to set task.text_column, a key of the
    # server's run-config, which no site sets.
    site = tmp_path / "site.csv"
    site.write_text("note,label\nhello,pos\n", encoding="utf-8")
    task = group_settings("task", "files", labels=["pos", "neg"])
    with pytest.raises(FedmodelError) as refused:
        load_site_file(site, task=task, label_names=("pos", "neg"), key="data-file")
    assert str(refused.value) == (
        f"data-file: file {site} has no text column 'text' (columns found: "
        "['note', 'label']); rename its text column to 'text', the name the "
        "server's task.text_column gives, or ask the server operator to set "
        "task.text_column to the name every site's file uses"
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_title_line_above_the_column_names_is_named(
    tmp_path: Path, test_file: Path, suffix: str
) -> None:
    # Before: "has no text column 'text' (columns found: ['Hospital A notes',
    # 'Unnamed: 1']); rename its text column to 'text', or ... set
    # task.text_column", though the file has a column 'text', under a title.
    sep = "," if suffix == ".csv" else "\t"
    site = tmp_path / f"site{suffix}"
    rows = ["Hospital A notes", "", "text", "label", "fine day", "pos", "awful", "neg"]
    site.write_text(
        "".join(f"{a}{sep}{b}\r\n" for a, b in zip(rows[::2], rows[1::2], strict=True)),
        encoding="utf-8-sig",
    )
    with pytest.raises(FedmodelError) as refused:
        load_task(_task([site], test_file), seed=0)
    assert str(refused.value) == (
        f"task.train_files[0]: file {site} has no text column 'text' (columns "
        "found: ['Hospital A notes', 'Unnamed: 1']); its row 1 (records counted "
        "from 1, not lines: no header or blank line counts) holds 'text' as a "
        "cell: the column names come below a title line (a spreadsheet's "
        "export); delete the lines above them, so that the column names are "
        "the file's first line"
    )


def test_a_title_line_of_one_cell_is_named_with_the_field_count(
    tmp_path: Path, test_file: Path
) -> None:
    # Before: only "put a text that holds commas in double quotes", though
    # no text held one: the title was read as a header of one column.
    site = tmp_path / "site.csv"
    site.write_text("Hospital A notes\ntext,label\nfine day,pos\nawful,neg\n")
    with pytest.raises(FedmodelError) as refused:
        load_task(_task([site], test_file), seed=0)
    assert str(refused.value) == (
        f"task.train_files[0]: file {site}, line 2 has 2 fields but the header "
        "has 1 (['Hospital A notes']); if line 1 is a title above the column "
        "names, delete it; else put a text that holds commas in double quotes "
        "and give every line one field per header name"
    )


def test_a_spreadsheets_error_value_is_refused_as_a_label_or_text(
    tmp_path: Path, test_file: Path
) -> None:
    # Before: a CSV whose label column came from a lookup formula trained the
    # records it found nothing for as a class '#N/A', without a word.
    site = _write(tmp_path / "a.csv", [*ROWS, ("late", "#N/A"), ("later", "#N/A")])
    with pytest.raises(FedmodelError) as refused:
        load_task(_task([site], test_file), seed=0)
    assert str(refused.value) == (
        f"task.train_files[0]: file {site} has 2 labels that are spreadsheet "
        "error values (#N/A, #VALUE! and the like: their formulas failed) in "
        "column 'label' at rows 4, 5 (records counted from 1, not lines: no "
        "header or blank line counts), starting on lines 5, 6 of the file; fix "
        "the formulas and export again or "
        "remove those rows"
    )
    texts = _write(tmp_path / "in.jsonl", [("hello", "x"), (" #VALUE! ", "y")])
    pattern = r"--input: file .*in.jsonl has 1 text that is a spreadsheet's .*row 2 "
    with pytest.raises(FedmodelError, match=pattern):
        read_input_texts(texts, key="--input")


def test_ordinary_words_are_labels(tmp_path: Path, test_file: Path) -> None:
    path = _write(tmp_path / "a.csv", [("x", "NA"), ("y", "none"), ("z", "pos")])
    data = load_task(_task([path], test_file), seed=0)
    # The test file's 'neg' is no class: the test split chooses none.
    assert data.label_names == ("NA", "none", "pos")


def test_repeated_column_is_refused_in_every_format(
    tmp_path: Path, test_file: Path
) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("text,label,label\nx,pos,neg\ny,neg,pos\n", encoding="utf-8")
    with pytest.raises(FedmodelError, match=r"a.csv.*\['label'\] more than once"):
        load_task(_task([csv], test_file), seed=0)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"text": "x", "label": "pos", "label": "neg"}\n')
    with pytest.raises(FedmodelError, match=r"b.jsonl, line 1.*\['label'\]"):
        load_task(_task([jsonl], test_file), seed=0)
    parquet = tmp_path / "c.parquet"
    columns = [["x", "y"], ["pos", "neg"], ["neg", "pos"]]
    pq.write_table(pa.table(columns, names=["text", "label", "label"]), parquet)
    with pytest.raises(FedmodelError, match=r"c.parquet.*\['label'\] more than once"):
        load_task(_task([parquet], test_file), seed=0)


def test_other_separators_and_padded_names(tmp_path: Path, test_file: Path) -> None:
    semi = tmp_path / "a.csv"
    semi.write_text("text;label\nx;pos\ny;neg\n", encoding="utf-8")
    with pytest.raises(FedmodelError, match=r"a.csv.*semicolon-separated.*commas"):
        load_task(_task([semi], test_file), seed=0)
    tab = tmp_path / "b.csv"
    tab.write_text("text\tlabel\nx\tpos\ny\tneg\n", encoding="utf-8")
    with pytest.raises(FedmodelError, match=r"b.csv.*tab-separated"):
        load_task(_task([tab], test_file), seed=0)
    padded = tmp_path / "c.csv"
    padded.write_text("\ufefftext , label\nx,pos\ny,neg\n", encoding="utf-8")
    assert load_task(_task([padded], test_file), seed=0).train["text"] == ["x", "y"]


def test_one_class_is_refused_even_where_labels_name_more(
    tmp_path: Path, test_file: Path
) -> None:
    # task.labels once let it through: the run trained a classifier that
    # learned one label, spending the sites' budgets for it.
    one = _write(tmp_path / "one.csv", [("x", "pos"), ("y", "pos")])
    for labels in (None, ["pos", "neg"]):
        with pytest.raises(FedmodelError) as info:
            load_task(_task([one], test_file, labels=labels), seed=0)
        message = str(info.value)
        assert "one.csv" in message and "only the label ['pos']" in message
        assert "Add records of at least one other label" in message
    two = _write(tmp_path / "two.csv", [("x", "pos"), ("y", "neg")])
    with pytest.raises(FedmodelError, match=r"task.labels must list at least 2"):
        load_task(_task([two], test_file, labels=["pos"]), seed=0)


def test_lists_objects_and_one_column_for_both_are_refused(
    tmp_path: Path, test_file: Path
) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(
        '{"text": "x", "label": "pos"}\n{"text": "y", "label": ["neg"]}\n'
        '{"text": {"t": 1}, "label": "neg"}\n'
    )
    nested = r"a.jsonl.*1 text that is a list or object, not a single value.*3"
    with pytest.raises(FedmodelError, match=nested):
        load_task(_task([jsonl], test_file), seed=0)
    jsonl.write_text('{"text": "x", "label": "pos"}\n{"text": "y", "label": [1]}\n')
    with pytest.raises(FedmodelError, match=r"1 label that is a list or object.*row 2"):
        load_task(_task([jsonl], test_file), seed=0)
    both = _write(tmp_path / "b.csv", ROWS)
    with pytest.raises(FedmodelError, match="are both 'label'"):
        load_task(_task([both], test_file, text_column="label"), seed=0)
