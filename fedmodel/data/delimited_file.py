"""A user's CSV or TSV file as a table under its header, naming the line at fault."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fedmodel.config.wording import plural
from fedmodel.data.column_names import refuse_repeated_columns
from fedmodel.data.text_file import RECORD_LINES, decode_utf8, ended_lines
from fedmodel.errors import FedmodelError


@dataclass(frozen=True)
class Delimited:
    """A text table with a header line: CSV or TSV, read by the same rules."""

    name: str
    suffix: str
    separator: str
    called: str


CSV = Delimited("CSV", ".csv", ",", "comma")
TSV = Delimited("TSV", ".tsv", "\t", "tab")
# Separators a header of one name may hold when the file uses another.
_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}
_SUFFIX_OF = {form.separator: form.suffix for form in (CSV, TSV)}


def read_delimited(path: Path, raw: bytes, *, form: Delimited) -> pd.DataFrame:
    """A `form` (CSV or TSV) file's bytes as a table of strings, shape checked first."""
    text = decode_utf8(raw, source=f"file {path}")
    starts = _check_shape(path, text, form=form)
    try:
        # Every cell as a string, empty cells as "", so nothing is guessed.
        # Given bytes: pandas encodes a str source to UTF-8 to parse it anyway,
        # and io.StringIO would hold the text again at four bytes a character.
        table = pd.read_csv(
            io.BytesIO(text.encode("utf-8")),
            sep=form.separator,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise FedmodelError(
            f"file {path} is empty (no header, no rows); write a header line of "
            "column names and at least one row"
        ) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise FedmodelError(
            f"file {path} is not valid {form.name}: {' '.join(str(exc).split())}; "
            "check quoting and the number of fields on that line"
        ) from exc
    # Names without surrounding spaces ("text, label" has a column "label").
    table.columns = pd.Index([str(c).strip() for c in table.columns])
    # Counted as pandas counts records: kept only where the counts agree.
    if len(starts) == len(table):
        table.attrs[RECORD_LINES] = np.array(starts)
    return table


def _check_shape(path: Path, text: str, *, form: Delimited) -> list[int]:
    """The line each record starts on, refusing a header or record pandas would misread.

    First refuse a header that repeats a name or is separated by another character.

    Then refuse a record whose field count is not the header's: pandas would
    read a first record with one field too many as an index and shift every
    column of the file by one, so a text with an unquoted comma (a tab in a
    TSV) would silently become a label. And a record that is the header
    again (two exports joined with `cat`), which would train a class "label".
    In a file of one column, a blank line before a later record is refused
    too: there it is a row whose cell is empty, which pandas would drop.
    """
    # The csv module refuses a field over 128 KiB; a long note is data. The
    # limit is the module's own, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    # Lines end at LF, CRLF or a lone CR, as pandas reads them, and a line
    # break inside a quoted field is kept as written.
    lines = _LinesRead(text)
    reader = csv.reader(lines, delimiter=form.separator, strict=True)
    ended = 0  # the line the last record read ends on
    starts: list[int] = []
    try:
        first = next(reader, [])
        ended = reader.line_num
        names = _header_names(path, first, form=form)
        first_record = True
        blank_line = 0
        for fields in reader:
            start, ended = ended + 1, reader.line_num
            if not "".join(fields).strip():
                # pandas skips a line that is blank or only spaces, and so do
                # we; a quoted "" it reads as a record of an empty cell.
                if not lines.last.strip():
                    blank_line = blank_line or reader.line_num
                else:
                    starts.append(start)
                continue
            starts.append(start)
            if blank_line and len(names) == 1:
                raise _blank_cell_error(path, blank_line, names[0])
            if len(fields) != len(names):
                raise _field_count_error(
                    path, (start, ended), fields, names, form=form, first=first_record
                )
            first_record = False
            if _repeats_header(fields, names):
                raise FedmodelError(
                    f"file {path}, line {reader.line_num} repeats the header "
                    f"({names}): were two files joined? "
                    "delete that line (and any later copy of the header)"
                )
    except csv.Error as exc:
        fix = _opened_quote(ended + 1, reader.line_num) or "; check its quoting"
        raise FedmodelError(
            f"file {path}, line {reader.line_num} is not valid {form.name} ({exc}){fix}"
        ) from exc
    return starts


def _header_names(path: Path, first: list[str], *, form: Delimited) -> list[str]:
    """The header's names, refusing Excel's `sep=` line, a repeat, another separator."""
    _refuse_excel_separator_line(path, form.separator.join(first))
    names = [name.strip() for name in first]
    refuse_repeated_columns(path, names)
    if len(names) == 1:
        _refuse_other_separator(path, first[0], form=form)
    return names


class _LinesRead:
    """A text's lines as csv reads them, keeping the one it read last.

    csv takes no line beyond a record's last, so `last` is the record just
    read: its blank line is told from a quoted "" without the file's lines
    held beside its text.
    """

    def __init__(self, text: str) -> None:
        self._lines = ended_lines(text)
        self.last = ""

    def __iter__(self) -> _LinesRead:
        return self

    def __next__(self) -> str:
        self.last = next(self._lines)
        return self.last


def _repeats_header(fields: list[str], names: list[str]) -> bool:
    """Whether a record is the header again, with or without a BOM before it.

    Two exports with a BOM each (Excel's "CSV UTF-8") joined with `cat` hold
    the second one's BOM before its header: compared as written, that header
    was read as a record, a class "label" of the text "text" after a BOM.
    """
    return [field.lstrip("\ufeff").strip() for field in fields] == names


def _blank_cell_error(path: Path, line: int, name: str) -> FedmodelError:
    """A blank line in a file of one column, with records after it.

    Trailing blank lines are left alone: no row comes after them to move.
    """
    return FedmodelError(
        f"file {path}, line {line} is blank, and in a file of one column "
        f"({name!r}) a blank line is a row whose cell is empty: read past it, "
        "every row after it would move up one, out of line with the file's "
        "lines (and `fedmodel predict`'s output rows with them). Write the "
        "text on that line, or delete the line"
    )


def _opened_quote(start: int, line: int) -> str:
    """Where a record that ends on `line` began, if a quoted field carried it there.

    A quote left open reads every line after it as one text, up to the next
    quote or the file's end: the fault is on the record's first line, not on
    the line csv stops at. Empty for a record of one line.
    """
    if start >= line:
        return ""
    return (
        f": its record starts on line {start}, where a quoted field opens and "
        f"runs on to line {line}; check the quoting on line {start}"
    )


def _field_count_error(
    path: Path,
    lines: tuple[int, int],
    fields: list[str],
    names: list[str],
    *,
    form: Delimited,
    first: bool,
) -> FedmodelError:
    """A record whose field count is not the header's, and the likely fixes.

    `lines` are the record's first and last: a quoted field may span lines.
    """
    # A spreadsheet's title line of one cell above the column names: the
    # title is read as a header of one name, and the names are its first record.
    title = (
        "if line 1 is a title above the column names, delete it; else "
        if first and len(names) == 1
        else ""
    )
    start, line = lines
    return FedmodelError(
        f"file {path}, line {line} has {len(fields)} "
        f"{plural(len(fields), 'field')} but the header has "
        f"{len(names)} ({names}){_opened_quote(start, line)}; {title}put "
        f"a text that holds {form.called}s in double quotes and "
        "give every line one field per header name"
    )


def _refuse_excel_separator_line(path: Path, line: str) -> None:
    """Refuse Excel's `sep=,` line above the header, which pandas reads as one."""
    if line.lower().startswith("sep=") and len(line) <= len("sep=,"):
        raise FedmodelError(
            f"file {path}, line 1 is Excel's {line!r} line, which names the "
            "separator, not the columns; delete it so the header comes first"
        )


def _refuse_other_separator(path: Path, header: str, *, form: Delimited) -> None:
    """Refuse a one-name header that holds another format's separator."""
    for separator, called in _SEPARATORS.items():
        if separator != form.separator and separator in header:
            other = _SUFFIX_OF.get(separator)
            rename = f", or name it {other}" if other else ""
            raise FedmodelError(
                f"file {path}: the header {header!r} looks {called}-separated; "
                f"fedmodel reads a {form.suffix} file as {form.called}-separated "
                f"{form.name}: re-save the file with {form.called}s{rename}"
            )
