"""A user's table's text and label columns, cell by cell, naming the rows at fault.

The files task's records, a site's own file, the label descriptions and the
unlabelled texts (`fedmodel predict --input`, `distill.transfer_file`) all
take their columns through here, so a missing, nested or mistyped cell, or a
spreadsheet's error value (`#N/A`), is refused by one rule, with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fedmodel.config.wording import plural
from fedmodel.data.file_formats import MISSING_RULE, ROW_CONVENTION, is_missing
from fedmodel.data.label_form import composed
from fedmodel.data.text_file import RECORD_LINES
from fedmodel.errors import FedmodelError

_SHOWN_ROWS = 5
# The error values Excel, LibreOffice and Google Sheets write into a cell
# whose formula failed; a CSV export keeps them as text.
_SPREADSHEET_ERRORS = frozenset(
    {"#N/A", "#VALUE!", "#REF!", "#NAME?", "#DIV/0!", "#NUM!", "#NULL!"}
    | {"#SPILL!", "#CALC!", "#ERROR!", "#GETTING_DATA"}
)

# Words for one cell and for more: a (one, many) pair, or a string for both.
Wording = str | tuple[str, str]


def require_column(
    table: pd.DataFrame, column: str, *, role: str, fix: str, path: Path, key: str
) -> None:
    """Refuse a table without `column`, naming a name that differs only in case."""
    if column not in table.columns:
        found = [str(c) for c in table.columns]
        alike = [name for name in found if name.strip().lower() == column.lower()]
        hint = f" ({alike[0]!r} differs only in case or spaces)" if alike else ""
        below = _header_row(table, column)
        if below is not None:
            # A spreadsheet's title line above the column names: pandas read
            # the title as the header ("Unnamed: 1" for its empty cells).
            fix = (
                f"its row {below} ({ROW_CONVENTION}) holds {column!r} as a cell: "
                "the column names come below a title line (a spreadsheet's "
                "export); delete the lines above them, so that the column names "
                "are the file's first line"
            )
        raise FedmodelError(
            f"{key}: file {path} has no {role} column {column!r}{hint} (columns "
            f"found: {found}); {fix}"
        )


def _header_row(table: pd.DataFrame, column: str) -> int | None:
    """The row (from 1) among the first few that holds `column` as a cell, if any."""
    for row, cells in enumerate(table.head(_SHOWN_ROWS).itertuples(index=False), 1):
        if any(isinstance(cell, str) and cell.strip() == column for cell in cells):
            return row
    return None


def column_cells(
    table: pd.DataFrame, column: str, *, role: str, path: Path, key: str
) -> list[object]:
    """A column's cells, refusing missing ones and lists or objects, by row."""
    values = table[column].tolist()
    missing = f"missing ({MISSING_RULE})"
    checks: list[tuple[Wording, Wording, Callable[[object], bool]]] = [
        (
            (
                "a list or object, not a single value,",
                "lists or objects, not single values,",
            ),
            ("fix it", "fix them"),
            _is_nested,
        ),
        (missing, ("fill it in", "fill them in"), is_missing),
        (
            (
                "a spreadsheet's error value (#N/A, #VALUE! and the like: its "
                "formula failed)",
                "spreadsheet error values (#N/A, #VALUE! and the like: their "
                "formulas failed)",
            ),
            ("fix the formula and export again", "fix the formulas and export again"),
            _is_spreadsheet_error,
        ),
    ]
    for problem, fix, test in checks:
        rows = [row for row, value in enumerate(values, start=1) if test(value)]
        if rows:
            raise _refused(
                rows,
                problem,
                fix,
                table=table,
                role=role,
                column=column,
                path=path,
                key=key,
            )
    return values


def text_cells(
    table: pd.DataFrame, column: str, *, path: Path, key: str, role: str = "text"
) -> list[str]:
    """A column's texts as written, refusing missing cells and cells that are no string.

    A JSON or Parquet number or true/false is refused: str() would train on
    `True` for JSON's `true` and `100000.0` for `1e5`, and most often it is
    the wrong column. The training files, `fedmodel predict --input`,
    `distill.transfer_file` and the label descriptions (`role`
    "description") all read their texts here.
    """
    values = column_cells(table, column, role=role, path=path, key=key)
    texts = [value for value in values if isinstance(value, str)]
    if len(texts) < len(values):
        rows = [row for row, v in enumerate(values, start=1) if not isinstance(v, str)]
        problem = (
            "a number or true/false, not a string,",
            "numbers or true/false, not strings,",
        )
        fix = ("write it as a string", "write them as strings")
        raise _refused(
            rows,
            problem,
            fix,
            table=table,
            role=role,
            column=column,
            path=path,
            key=key,
        )
    return texts


def label_cells(table: pd.DataFrame, column: str, *, path: Path, key: str) -> list[str]:
    """A column of labels as the text they are compared by (a number 3.0 is `3`).

    `column_cells`, refusing true/false: read as a label it would be the
    class `True`, which a CSV export of the same records writes `true`. A
    number is a label (a code): the number 3 and the text "3" are one label.
    """
    values = column_cells(table, column, role="label", path=path, key=key)
    rows = [row for row, value in enumerate(values, start=1) if _is_boolean(value)]
    if rows:
        problem = "true/false, not text,"
        fix = (
            'write it as a string ("true" / "false", or the class it means)',
            'write them as strings ("true" / "false", or the classes they mean)',
        )
        raise _refused(
            rows,
            problem,
            fix,
            table=table,
            role="label",
            column=column,
            path=path,
            key=key,
        )
    return [_label_text(value) for value in values]


def _shown(numbers: Sequence[int]) -> str:
    """The first few row or line numbers, and how many more."""
    shown = ", ".join(str(number) for number in numbers[:_SHOWN_ROWS])
    more = len(numbers) - _SHOWN_ROWS
    return shown + (f" and {more} more" if more > 0 else "")


def record_lines(table: pd.DataFrame) -> np.ndarray | None:
    """The line each of `table`'s records starts on, where its reader kept lines.

    A CSV or TSV record may span lines (a quoted note's line breaks), and
    JSONL skips blank lines: the row is not the line an editor shows. A
    Parquet table has no lines, and gives None.
    """
    lines = table.attrs.get(RECORD_LINES)
    if not isinstance(lines, np.ndarray) or len(lines) != len(table):
        return None
    return lines


def starting_lines(lines: np.ndarray | None, rows: Sequence[int]) -> str:
    """`, starting on line N of the file` for `rows` (from 1), where `lines` are."""
    if lines is None:
        return ""
    starts = [int(lines[row - 1]) for row in rows]
    return f", starting on {plural(len(rows), 'line')} {_shown(starts)} of the file"


def _refused(
    rows: Sequence[int],
    problem: Wording,
    fix: Wording,
    *,
    table: pd.DataFrame,
    role: str,
    column: str,
    path: Path,
    key: str,
) -> FedmodelError:
    """One line naming the file, the column and the rows whose cells are `problem`.

    `problem` and `fix` are worded for one row and for more, or alike for both.
    The rows count `table`'s records; the lines they start on follow where
    its file has lines (`starting_lines`).
    """
    n = len(rows)
    return FedmodelError(
        f"{key}: file {path} has {n} {plural(n, role)} that "
        f"{plural(n, 'is', 'are')} {_in_number(n, problem)} in column {column!r} at "
        f"{plural(n, 'row')} {_shown(rows)} ({ROW_CONVENTION})"
        f"{starting_lines(record_lines(table), rows)}; "
        f"{_in_number(n, fix)} or remove {plural(n, 'that row', 'those rows')}"
    )


def _in_number(count: int, wording: Wording) -> str:
    one, many = (wording, wording) if isinstance(wording, str) else wording
    return plural(count, one, many)


def _label_text(value: object) -> str:
    # A float column holds 3 as 3.0 (JSON [3, 4.5], Parquet floats): it is `3`.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return composed(str(value).strip())


def _is_spreadsheet_error(value: object) -> bool:
    # A formula's error exported as text: read as a label, a class "#N/A"
    # of the records whose lookup failed; as a text, a record of no text.
    return isinstance(value, str) and value.strip().upper() in _SPREADSHEET_ERRORS


def _is_nested(value: object) -> bool:
    return isinstance(value, list | dict | tuple | np.ndarray)


def _is_boolean(value: object) -> bool:
    return isinstance(value, bool | np.bool_)
