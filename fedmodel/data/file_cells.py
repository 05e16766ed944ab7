"""A user's table's text and label columns, cell by cell, naming the rows at fault.

The files task's records, a site's own file and the label descriptions all
take their columns through here, so a missing, nested or mistyped cell is
refused by one rule, with the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fedmodel.data.file_formats import MISSING_RULE, ROW_CONVENTION, is_missing
from fedmodel.data.label_form import composed
from fedmodel.errors import FedmodelError

_SHOWN_ROWS = 5


def require_column(
    table: pd.DataFrame, column: str, *, role: str, fix: str, path: Path, key: str
) -> None:
    """Refuse a table without `column`, naming a name that differs only in case."""
    if column not in table.columns:
        found = [str(c) for c in table.columns]
        alike = [name for name in found if name.strip().lower() == column.lower()]
        hint = f" ({alike[0]!r} differs only in case or spaces)" if alike else ""
        raise FedmodelError(
            f"{key}: file {path} has no {role} column {column!r}{hint} (columns "
            f"found: {found}); {fix}"
        )


def column_cells(
    table: pd.DataFrame,
    column: str,
    *,
    role: str,
    path: Path,
    key: str,
    texts: bool = False,
) -> list[object]:
    """A column's cells, refusing missing ones and lists or objects, by row.

    With `texts`, a cell that is not a string (a JSON or Parquet number or
    true/false) is refused too: str() would train on `True` for JSON's `true`
    and `100000.0` for `1e5`, and most often it is the wrong column.
    """
    values = table[column].tolist()
    checks = [
        ("lists or objects, not single values,", "fix them", _is_nested),
        (f"missing ({MISSING_RULE})", "fill them in", is_missing),
    ]
    if texts:
        not_text = "numbers or true/false, not strings,"
        checks.append((not_text, "write them as strings", _not_text))
    for problem, fix, test in checks:
        rows = [row for row, value in enumerate(values, start=1) if test(value)]
        if rows:
            raise FedmodelError(
                f"{key}: file {path} has {len(rows)} {role}(s) that are {problem} "
                f"in column {column!r} at row(s) {shown_rows(rows)} "
                f"({ROW_CONVENTION}); {fix} or remove those rows"
            )
    return values


def label_string(value: object) -> str | None:
    """A label cell as the text labels are compared by (3.0 is `3`); None if missing."""
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return composed(str(value).strip())


def shown_rows(rows: Sequence[int]) -> str:
    """The first few row numbers, and how many more."""
    shown = ", ".join(str(row) for row in rows[:_SHOWN_ROWS])
    more = len(rows) - _SHOWN_ROWS
    return shown + (f" and {more} more" if more > 0 else "")


def _is_nested(value: object) -> bool:
    return isinstance(value, list | dict | tuple | np.ndarray)


def _not_text(value: object) -> bool:
    return not isinstance(value, str)
