"""`fedmodel predict --input`: texts piped in, their line numbers, a file's suffixes."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from tests.unit.test_export_predict import exported

__all__ = ["exported"]


class _Terminal(io.TextIOWrapper):
    """Standard input as a terminal: what is typed, then Ctrl-D."""

    def isatty(self) -> bool:
        return True


def _pipe(monkeypatch: pytest.MonkeyPatch, raw: bytes, *, typed: bool = False) -> None:
    stream = (_Terminal if typed else io.TextIOWrapper)(io.BytesIO(raw))
    monkeypatch.setattr(sys, "stdin", stream)


def _jsonl(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_predict_labels_texts_piped_in_as_it_labels_them_given(
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `cat notes.txt | fedmodel predict --model DIR --input -`: one text a
    # line, read as a .txt file is (a BOM, CRLF and blank lines as there).
    _pipe(monkeypatch, b"\xef\xbb\xbflost card\r\n\r\ntop up failed\n")
    argv = ["predict", "--model", str(exported), "--format", "jsonl"]
    assert run_command([*argv, "--input", "-"]) == 0
    piped = _jsonl(capsys.readouterr().out)
    assert run_command([*argv, "--text", "lost card", "--text", "top up failed"]) == 0
    given = _jsonl(capsys.readouterr().out)
    assert [row["text"] for row in piped] == ["lost card", "top up failed"]
    # The blank line 2 is skipped: each text says its line.
    assert [row.pop("line") for row in piped] == [1, 3]
    assert piped == given


@pytest.mark.parametrize("typed", [True, False])
def test_predict_says_how_to_end_texts_typed_at_a_terminal(
    typed: bool,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `fedmodel predict --input -` with nothing piped in waits for typing, as
    # `cat -` does; it says so on stderr, and says nothing when texts are piped.
    _pipe(monkeypatch, b"lost card\n", typed=typed)
    argv = ["predict", "--model", str(exported), "--format", "jsonl", "--input", "-"]
    assert run_command(argv) == 0
    captured = capsys.readouterr()
    assert [row["text"] for row in _jsonl(captured.out)] == ["lost card"]
    hint = "reading texts from the terminal, one per line; end with Ctrl-D"
    assert (hint in captured.err) == typed


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b"lost card\ncaf\xe9\n",
            "--input: standard input is not UTF-8 text: byte 13 (line 2) is 0xE9",
        ),
        (b"\n  \n", "--input: standard input holds no text lines"),
        (b"text\nlost card\n", "standard input starts with the line 'text'"),
    ],
)
def test_predict_refuses_bad_piped_input_in_one_line(
    raw: bytes,
    message: str,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _pipe(monkeypatch, raw)
    assert run_command(["predict", "--model", str(exported), "--input", "-"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_an_input_of_another_suffix_is_told_a_txt_file_serves_too(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "notes.xlsx"
    sheet.write_bytes(b"PK")
    argv = ["predict", "--model", str(exported), "--input", str(sheet)]
    assert run_command(argv) == 2
    err = capsys.readouterr().err
    assert "['.csv', '.jsonl', '.parquet', '.tsv', '.txt']" in err


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_blank_line_in_a_file_of_one_column_is_refused_naming_it(
    suffix: str,
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A column of texts exported with a blank cell: pandas dropped the blank
    # line, so 'top up failed' was labelled in the output's row 2, not 3.
    queries = tmp_path / f"queries{suffix}"
    queries.write_text("text\nlost card\n\ntop up failed\n")
    argv = ["predict", "--model", str(exported), "--format", "jsonl"]
    assert run_command([*argv, "--input", str(queries)]) == 2
    err = capsys.readouterr().err
    assert f"--input: file {queries}, line 3 is blank" in err
    assert "Write the text on that line, or delete the line" in err
    # Blank lines after the last text move no row: the file is read.
    queries.write_text("text\nlost card\ntop up failed\n\n\n")
    assert run_command([*argv, "--input", str(queries)]) == 0
    rows = _jsonl(capsys.readouterr().out)
    assert [row["text"] for row in rows] == ["lost card", "top up failed"]


def test_a_txt_inputs_predictions_name_the_lines_its_blank_lines_moved(
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Blank lines are skipped, so the n-th prediction need not be line n:
    # before, 'top up failed' (line 4) was the output's row 2 with no line
    # number, so the rows did not line up with the file's lines.
    queries = tmp_path / "queries.txt"
    queries.write_text("lost card\n\n\ntop up failed\n\n")
    argv = ["predict", "--model", str(exported), "--input", str(queries)]
    assert run_command([*argv, "--format", "jsonl"]) == 0
    rows = _jsonl(capsys.readouterr().out)
    assert [(row["line"], row["text"]) for row in rows] == [
        (1, "lost card"),
        (4, "top up failed"),
    ]
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: one table row a line
    assert run_command(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert [cell.strip() for cell in table[1].split("┃")[1:3]] == ["line", "text"]
    # A row spans a line per next best label: its first names the line.
    cells = [[cell.strip() for cell in row.split("│")[1:3]] for row in table[3:-1]]
    assert [cell for cell in cells if cell[0]] == [
        ["1", "lost card"],
        ["4", "top up failed"],
    ]
    # A table's texts are its rows in turn: no line numbers there.
    csv = tmp_path / "queries.csv"
    csv.write_text("text\nlost card\ntop up failed\n")
    argv = ["predict", "--model", str(exported), "--input", str(csv)]
    assert run_command([*argv, "--format", "jsonl"]) == 0
    assert all("line" not in row for row in _jsonl(capsys.readouterr().out))
