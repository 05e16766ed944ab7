"""A user's text files as written by other tools: encodings and line endings."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from fedmodel.client.site_agreement import agreed_labels
from fedmodel.data.tasks import load_task
from fedmodel.data.text_file import ended_lines
from fedmodel.data.text_inputs import read_input_texts
from fedmodel.errors import FedmodelError
from tests.unit.test_data_files import _task


@pytest.fixture
def test_csv(tmp_path: Path) -> Path:
    path = tmp_path / "test.csv"
    path.write_text("text,label\ngood,pos\nbad,neg\n")
    return path


def test_a_jsonl_text_holding_a_unicode_line_separator_is_one_record(
    tmp_path: Path, test_csv: Path
) -> None:
    # JSON allows U+2028, U+2029 and U+0085 raw inside a string, and
    # ensure_ascii=False (pandas' force_ascii=False) writes them so; they
    # are no line break of a JSONL file.
    texts = ["one\u2028two", "three\u2029four", "five\x85six", "plain"]
    site = tmp_path / "site.jsonl"
    lines = [
        json.dumps({"text": t, "label": y}, ensure_ascii=False)
        for t, y in zip(texts, ["pos", "neg", "pos", "neg"], strict=True)
    ]
    site.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_task(_task([site], test_csv), seed=0)
    assert data.train["text"] == texts
    assert read_input_texts(site, key="--input").texts == texts


def test_a_csv_with_lone_cr_line_endings_is_read(
    tmp_path: Path, test_csv: Path
) -> None:
    # A spreadsheet's "CSV (Macintosh)" ends lines with a lone CR.
    site = tmp_path / "mac.csv"
    site.write_bytes(b'text,label\r"chest\r\npain, left",cardio\rbroken hip,ortho\r')
    data = load_task(_task([site], test_csv), seed=0)
    assert data.train["text"] == ["chest\r\npain, left", "broken hip"]
    assert [data.label_names[i] for i in data.train["label"]] == ["cardio", "ortho"]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"text,label\rchest pain,cardio\rhip, left,ortho\r")
    with pytest.raises(FedmodelError, match=r"bad.csv, line 3 has 3 fields"):
        load_task(_task([bad], test_csv), seed=0)


def test_a_byte_not_utf8_after_a_bom_is_named_where_it_is(
    tmp_path: Path, test_csv: Path
) -> None:
    site = tmp_path / "excel.csv"
    site.write_bytes(b"\xef\xbb\xbftext,label\nab,x\ncaf\xe9,y\n")
    with pytest.raises(FedmodelError, match=r"byte 22 \(line 3\) is 0xE9, "):
        load_task(_task([site], test_csv), seed=0)


def test_a_latin1_export_is_named_by_its_byte_and_one_line(
    tmp_path: Path, test_csv: Path
) -> None:
    # A hospital's plain "CSV" export from a spreadsheet on Windows: the byte
    # is named by value, so the user sees which encoding wrote it.
    site = tmp_path / "site.csv"
    pd.DataFrame({"text": ["cough", "Fi\u00e8vre"], "label": ["x", "y"]}).to_csv(
        site, index=False, encoding="latin-1"
    )
    with pytest.raises(FedmodelError) as info:
        load_task(_task([site], test_csv), seed=0)
    message = str(info.value)
    assert message.startswith(f"task.train_files[0]: file {site} is not UTF-8")
    assert "byte 21 (line 3) is 0xE8, " in message
    assert "Latin-1 or Windows-1252" in message and "\n" not in message


def test_a_utf16_export_is_named_as_such(tmp_path: Path, test_csv: Path) -> None:
    site = tmp_path / "unicode.csv"
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).to_csv(
        site, index=False, encoding="utf-16"
    )
    with pytest.raises(FedmodelError, match="unicode.csv is UTF-16 text"):
        load_task(_task([site], test_csv), seed=0)


def test_a_labels_file_is_read_as_every_text_file_is(tmp_path: Path) -> None:
    # Windows Notepad saves UTF-8 with a BOM, which is no part of the first
    # label; a lone CR ends a line; U+2028 does not (a .txt of texts keeps it).
    path = tmp_path / "labels.txt"
    path.write_bytes(b"\xef\xbb\xbfcardio\r\northo\rneuro\xe2\x80\xa8logy\n\n")
    assert agreed_labels(path) == ("cardio", "ortho", "neuro\u2028logy")
    assert list(agreed_labels(path)) == read_input_texts(path, key="--input").texts


def test_a_utf16_labels_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("cardio\northo\n", encoding="utf-16")
    with pytest.raises(FedmodelError) as info:
        agreed_labels(path)
    message = str(info.value)
    assert message.startswith("--labels-file (node config labels-file): file ")
    assert "labels.txt is UTF-16 text" in message
    assert "\n" not in message


def test_a_row_number_says_it_counts_records_not_lines(
    tmp_path: Path, test_csv: Path
) -> None:
    # The missing label is on line 4 of each file: row 2 must not read as
    # "line 2" or "line 3" (header + 2), as "1-based data rows" did.
    site = tmp_path / "notes.csv"
    site.write_text('text,label\n"chest pain,\nleft side",cardio\nhip,\n')
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text('{"text": "chest", "label": "cardio"}\n\n\n{"text": "hip"}\n')
    for path in (site, jsonl):
        with pytest.raises(FedmodelError) as info:
            load_task(_task([path], test_csv), seed=0)
        assert "at row 2 (records counted from 1, not lines" in str(info.value)


def _workbook() -> bytes:
    """The opening of an Excel .xlsx: a ZIP archive of XML parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (_workbook(), "is an Excel workbook (.xlsx), not text"),
        (
            bytes.fromhex("D0CF11E0A1B11AE1") + bytes(500) + b"\x8d",
            "is an Excel 97-2003 workbook (.xls) or another Office file, not text",
        ),
        (b"PK\x03\x04" + bytes(100), "is a ZIP archive, not text"),
    ],
)
def test_a_workbook_named_csv_is_named_as_one(
    tmp_path: Path, test_csv: Path, raw: bytes, what: str
) -> None:
    site = tmp_path / "export.csv"
    site.write_bytes(raw)
    with pytest.raises(FedmodelError) as info:
        load_task(_task([site], test_csv), seed=0)
    message = str(info.value)
    assert f"export.csv {what}" in message
    assert "'CSV UTF-8'" in message and "Latin-1" not in message


def test_a_gzip_file_is_named_as_one(tmp_path: Path, test_csv: Path) -> None:
    # Before: a gzip-compressed export named .csv was blamed on Latin-1
    # ("byte 1 (line 1) is 0x8B ... re-save it as UTF-8"), and one named
    # .csv.gz was asked to be "converted".
    packed = gzip.compress(b"text,label\ncough,x\nfever,y\n")
    (tmp_path / "export.csv").write_bytes(packed)
    (tmp_path / "export.csv.gz").write_bytes(packed)
    with pytest.raises(FedmodelError) as named_csv:
        load_task(_task([tmp_path / "export.csv"], test_csv), seed=0)
    assert "export.csv is a gzip archive, not text; decompress it (gunzip)" in str(
        named_csv.value
    )
    assert "Latin-1" not in str(named_csv.value)
    with pytest.raises(FedmodelError) as named_gz:
        load_task(_task([tmp_path / "export.csv.gz"], test_csv), seed=0)
    assert "has the unsupported suffix '.gz'; decompress it (gunzip)" in str(
        named_gz.value
    )


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        # A web tool's or DataFrame.to_json's list of records.
        (
            "export.json",
            "write its records one JSON object per line and name that file "
            "(`jq -c '.[]' export.json > export.jsonl` does so for a list of "
            "objects), one of ['.csv', '.jsonl', '.parquet', '.tsv']",
        ),
        (
            "export.xlsx",
            "save the sheet as 'CSV UTF-8' from the spreadsheet and name that "
            "file, one of",
        ),
        # A spreadsheet's "Text (Tab delimited)" export: a TSV named .txt.
        (
            "export.txt",
            "a table saved as text is read by its separator's suffix: rename it "
            "to .tsv if tab-separated (a spreadsheet's 'Text (Tab delimited)' "
            "export), to .csv if comma-separated, one of",
        ),
    ],
)
def test_an_export_of_another_format_is_told_how_to_convert(
    tmp_path: Path, test_csv: Path, name: str, fix: str
) -> None:
    # Before: "convert it to one of [...]", naming no way to.
    site = tmp_path / name
    site.write_text(json.dumps([{"text": "cough", "label": "x"}]))
    with pytest.raises(FedmodelError) as refused:
        load_task(_task([site], test_csv), seed=0)
    assert f"{name} has the unsupported suffix '{site.suffix}'; {fix}" in str(
        refused.value
    )


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_export_without_its_bom_is_named_as_utf16(
    tmp_path: Path, test_csv: Path, encoding: str
) -> None:
    site = tmp_path / "unicode.csv"
    site.write_bytes("text,label\ncough,x\nFi\u00e8vre,y\n".encode(encoding))
    with pytest.raises(FedmodelError, match="unicode.csv is UTF-16 text") as info:
        load_task(_task([site], test_csv), seed=0)
    assert "\x00" not in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["", "a", "a\n", "a\r\nb\rc\n\rd", "\n\n", "x\u2028y\x85z\r", '"q\r\nr",s\r\n'],
)
def test_ended_lines_are_the_lines_csv_read_before(text: str) -> None:
    # delimited_file's shape check read io.StringIO(text, newline="")'s list of
    # lines, a copy of the file at four bytes a character: the same lines.
    assert list(ended_lines(text)) == io.StringIO(text, newline="").readlines()
