"""Unlabelled texts from a file: one per line (.txt) or a column of a table.

Used for the texts a server holds for distillation and the texts
`fedmodel predict` labels.
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.data.file_formats import MISSING_RULE, is_missing, read_table, read_utf8
from fedmodel.errors import FedmodelError


def read_texts(
    path: Path, *, key: str, text_column: str = "text", column_option: str = ""
) -> list[str]:
    """Texts from a .txt file (one per non-blank line) or a CSV/JSONL/Parquet column.

    `key` names where the path came from (a config key or a CLI option), so the
    message says what to fix; `column_option`, if any, is the option that names
    another column. An empty file or an empty/non-text cell is an error naming
    the line or row.
    """
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise FedmodelError(f"{key}: file {path} does not exist or is not a file")
        texts = [line.strip() for line in read_utf8(path).splitlines()]
        texts = [text for text in texts if text]
        if not texts:
            raise FedmodelError(f"{key}: file {path} holds no text lines")
        return texts
    table = read_table(path, key=key)
    if text_column not in table.columns:
        raise FedmodelError(
            f"{key}: file {path} has no column {text_column!r} (columns: "
            f"{sorted(map(str, table.columns))}); rename the texts' column to "
            f"{text_column!r}"
            + (f" or name it with {column_option}" if column_option else "")
        )
    texts = []
    for row, value in enumerate(table[text_column].tolist(), start=1):
        if is_missing(value) or not isinstance(value, str):
            raise FedmodelError(
                f"{key}: file {path}, row {row} (1-based data rows): column "
                f"{text_column!r} holds {value!r}, not a text (missing means "
                f"{MISSING_RULE}); fill in that row's text or remove the row"
            )
        texts.append(value.strip())
    if not texts:
        raise FedmodelError(f"{key}: file {path} holds no rows")
    return texts
