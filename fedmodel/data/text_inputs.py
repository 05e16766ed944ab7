"""Unlabelled texts from a file: one per line (.txt) or a column of a table.

Used for the texts a server holds for distillation and the texts
`fedmodel predict` labels, from a file or piped in (`--input -`), which is
read as a .txt file is. A .txt file has no header and no labels: every
non-blank line is a text, so a first line that is only a column's name
(`text`, the text column asked for, or one the caller knows of, such as the
run's `task.text_column`: a table's export) is refused rather than read as one.
Blank lines are skipped, so each such text keeps its line number
(`InputTexts.lines`): `fedmodel predict` prints it beside the text's labels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fedmodel.data.file_cells import require_column, text_cells
from fedmodel.data.file_formats import check_is_file, read_table
from fedmodel.data.text_file import decode_utf8, read_utf8, text_lines
from fedmodel.errors import FedmodelError

# A file of texts, one per line, without a header.
_LINES = ".txt"


@dataclass(frozen=True)
class InputTexts:
    """Texts from a file or standard input, and where each stood there.

    `lines`: each text's line number where texts are given one per line (a
    .txt file, standard input), whose blank lines are skipped, so that the
    n-th text need not be the n-th line; None for a table's column, whose
    texts are its rows in turn.
    """

    texts: list[str]
    lines: list[int] | None = None


def read_input_texts(
    path: Path,
    *,
    key: str,
    text_column: str = "text",
    column_option: str = "",
    header_names: Collection[str] = (),
    bytes_read: Callable[[bytes], object] | None = None,
) -> InputTexts:
    """Texts from a .txt file (one per non-blank line) or a table's column.

    `key` names where the path came from (a config key or a CLI option), so the
    message says what to fix; `column_option`, if any, is the option that names
    another column. A missing column, an empty file and an empty or non-text
    cell are errors, worded as for the training files' texts
    (`require_column`, `text_cells`), naming the column or the rows.
    `header_names` are more column names a .txt file's first line is refused as.
    `bytes_read`, if given, is handed the file's bytes the texts are parsed
    from, read once (`read_table`'s).
    """
    if path.suffix.lower() == _LINES:
        check_is_file(path, key=key)
        return _line_texts(
            lambda: read_utf8(path, bytes_read=bytes_read),
            source=f"file {path}",
            key=key,
            header_names={"text", text_column, *header_names},
        )
    table = read_table(path, key=key, other_suffixes=(_LINES,), bytes_read=bytes_read)
    if len(table) == 0:
        # Before the column: an empty JSONL file has no columns to name.
        raise FedmodelError(f"{key}: file {path} holds no rows")
    fix = f"rename the texts' column to {text_column!r}" + (
        f" or name it with {column_option}" if column_option else ""
    )
    require_column(table, text_column, role="text", fix=fix, path=path, key=key)
    cells = text_cells(table, text_column, path=path, key=key)
    return InputTexts([text.strip() for text in cells])


def stdin_texts(
    stream: BinaryIO,
    *,
    key: str,
    text_column: str = "text",
    header_names: Collection[str] = (),
) -> InputTexts:
    """Texts piped in, one per non-blank line: read as a .txt file is."""
    source = "standard input"
    return _line_texts(
        lambda: decode_utf8(stream.read(), source=source),
        source=source,
        key=key,
        header_names={"text", text_column, *header_names},
    )


def _line_texts(
    read: Callable[[], str], *, source: str, key: str, header_names: Collection[str]
) -> InputTexts:
    """The non-blank lines, refusing a first one that is one of `header_names`."""
    try:
        text = read()
    except FedmodelError as exc:
        # The reader names the file and the byte; the key says which setting.
        raise FedmodelError(f"{key}: {exc}") from exc
    lines = [line.strip() for line in text_lines(text)]
    first = next((n for n, line in enumerate(lines, start=1) if line), None)
    if first is None:
        raise FedmodelError(f"{key}: {source} holds no text lines")
    if lines[first - 1].casefold() in {name.casefold() for name in header_names}:
        raise FedmodelError(
            f"{key}: {source} starts with the line {lines[first - 1]!r} (line "
            f"{first}), a column name, but texts given one per line have no "
            "header: every line is a text. Remove that line"
        )
    numbers = [number for number, line in enumerate(lines, start=1) if line]
    return InputTexts([lines[n - 1] for n in numbers], numbers)
