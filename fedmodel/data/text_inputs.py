"""Unlabelled texts from a file: one per line (.txt) or a column of a table.

Used for the texts a server holds for distillation and the texts
`fedmodel predict` labels. A .txt file has no header and no labels: every
non-blank line is a text, so a first line that is only a column's name
(`text`, from a table's export) is refused rather than read as one.
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.data.file_cells import text_cells
from fedmodel.data.file_formats import read_table
from fedmodel.data.text_file import read_utf8, text_lines
from fedmodel.errors import FedmodelError


def read_texts(
    path: Path, *, key: str, text_column: str = "text", column_option: str = ""
) -> list[str]:
    """Texts from a .txt file (one per non-blank line) or a table's column.

    `key` names where the path came from (a config key or a CLI option), so the
    message says what to fix; `column_option`, if any, is the option that names
    another column. An empty file is an error, and so is an empty or non-text
    cell, by the rule the training files' texts follow (`text_cells`), naming
    the rows.
    """
    if path.suffix.lower() == ".txt":
        return _lines(path, key=key, text_column=text_column)
    table = read_table(path, key=key)
    if text_column not in table.columns:
        raise FedmodelError(
            f"{key}: file {path} has no column {text_column!r} (columns: "
            f"{sorted(map(str, table.columns))}); rename the texts' column to "
            f"{text_column!r}"
            + (f" or name it with {column_option}" if column_option else "")
        )
    cells = text_cells(table, text_column, path=path, key=key)
    texts = [text.strip() for text in cells]
    if not texts:
        raise FedmodelError(f"{key}: file {path} holds no rows")
    return texts


def _lines(path: Path, *, key: str, text_column: str) -> list[str]:
    """A .txt file's non-blank lines, refusing a header line of a column's name."""
    if not path.is_file():
        raise FedmodelError(f"{key}: file {path} does not exist or is not a file")
    texts = [line.strip() for line in text_lines(read_utf8(path))]
    texts = [text for text in texts if text]
    if not texts:
        raise FedmodelError(f"{key}: file {path} holds no text lines")
    if texts[0].casefold() in {"text", text_column.casefold()}:
        raise FedmodelError(
            f"{key}: file {path} starts with the line {texts[0]!r}, a column "
            "name, but a .txt file has no header: every line is a text. Remove "
            "that line"
        )
    return texts
