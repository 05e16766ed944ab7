"""Reading a user's CSV, TSV, JSONL or Parquet file into a table, naming what is wrong.

Row numbers in messages count records, not lines: the first record is row 1,
and a CSV or TSV header, a blank line and the line breaks inside a quoted
text are not counted (a spreadsheet shows row N one below, under its header).
Errors about a file's syntax name the line instead.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedmodel.config.train_files import TABLE_SUFFIXES
from fedmodel.config.wording import plural
from fedmodel.data.jsonl_file import read_jsonl
from fedmodel.data.text_file import read_utf8
from fedmodel.errors import FedmodelError

ROW_CONVENTION = "records counted from 1, not lines: no header or blank line counts"
# The one rule for an empty cell, in every reader (CSV, TSV, JSONL, Parquet, a
# site's file, `fedmodel predict --input`): a cell is missing when it is null
# (JSON null, a Parquet null), a NaN number, blank, or the text NaN in any
# case, which is what pandas and numpy write for a missing number. Any other
# text ("NA", "none", "null") is an ordinary value.
MISSING_RULE = "null, a NaN number, blank, or the text 'NaN' in any case"


@dataclass(frozen=True)
class _Delimited:
    """A text table with a header line: CSV or TSV, read by the same rules."""

    name: str
    suffix: str
    separator: str
    called: str


_CSV = _Delimited("CSV", ".csv", ",", "comma")
_TSV = _Delimited("TSV", ".tsv", "\t", "tab")
# Separators a header of one name may hold when the file uses another.
_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}
_SUFFIX_OF = {form.separator: form.suffix for form in (_CSV, _TSV)}


def read_table(
    path: Path, *, key: str, other_suffixes: Sequence[str] = ()
) -> pd.DataFrame:
    """Read one CSV / TSV / JSONL / Parquet file, chosen by its suffix.

    `key` is the config key the path came from (e.g. "task.train_files[2]"), so
    the message can say where to fix it. Every error a user's file can cause is a
    FedmodelError naming the file. `other_suffixes` are those the caller reads
    itself (`.txt`), named with the tables' where a suffix is refused.
    """
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".csv": partial(_read_delimited, form=_CSV),
        ".tsv": partial(_read_delimited, form=_TSV),
        ".jsonl": read_jsonl,
        ".parquet": _read_parquet,
    }
    _check_is_file(path, key=key)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        known = sorted([*TABLE_SUFFIXES, *other_suffixes])
        compressed = path.suffix.lower() == ".gz"
        raise FedmodelError(
            f"{key}: file {path} has the unsupported suffix {path.suffix!r}; "
            + (
                f"decompress it (gunzip) and name the file it gives, one of {known}"
                if compressed
                else f"convert it to one of {known}"
            )
        )
    reader = readers[path.suffix.lower()]
    try:
        table = reader(path)
        _refuse_repeats(path, [str(c) for c in table.columns])
    except FedmodelError as exc:
        # The readers name the file and line; the key says which setting.
        raise FedmodelError(f"{key}: {exc}") from exc
    return table


def _check_is_file(path: Path, *, key: str) -> None:
    """Refuse a path that does not exist or is a folder, naming the fix."""
    if not path.exists():
        glob = any(c in path.name for c in "*?[")
        pattern = glob and not key.startswith("task.train_files")
        raise FedmodelError(
            f"{key}: file {path} does not exist (resolved to {path.resolve()}); "
            "fix the path (relative paths are relative to the working directory"
            f"{'; only task.train_files takes patterns' if pattern else ''})"
        )
    if path.is_dir() and path.suffix:
        # A Spark or Dask export: one table in parts, which are not sites.
        raise FedmodelError(
            f"{key}: {path} is a folder, not a file; write its table out as one "
            f"{path.suffix} file and name that"
        )
    if path.is_dir():
        more = (
            f", or each of its files by a pattern, e.g. '[{path / '*.csv'}]'"
            if key.startswith("task.train_files")
            else ""
        )
        raise FedmodelError(
            f"{key}: {path} is a folder, not a file; name a file in it{more}"
        )
    if not path.is_file():
        raise FedmodelError(f"{key}: {path} is not a file; point it at a data file")


def _refuse_repeats(path: Path, names: list[str]) -> None:
    # pandas renames a repeated CSV name ("label.1"), json.loads keeps a
    # repeated key's last value and pyarrow cannot select it: all silent or
    # obscure, so a repeated column name is refused wherever it appears.
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise FedmodelError(
            f"file {path} names the {plural(len(repeated), 'column')} {repeated} "
            "more than once; rename or remove the extra "
            f"{plural(len(repeated), 'column')} so each name is used once"
        )


def is_missing(value: object) -> bool:
    """Whether a cell counts as empty: see `MISSING_RULE`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if not isinstance(value, str) and pd.api.types.is_scalar(value):
        if pd.isna(value):
            return True
    text = str(value).strip()
    return not text or text.lower() == "nan"


def _read_delimited(path: Path, *, form: _Delimited) -> pd.DataFrame:
    text = read_utf8(path)
    _check_shape(path, text, form=form)
    try:
        # Every cell as a string, empty cells as "", so nothing is guessed.
        table = pd.read_csv(
            io.StringIO(text),
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
    return table


def _check_shape(path: Path, text: str, *, form: _Delimited) -> None:
    """Refuse a header that repeats a name or is separated by another character.

    Then refuse a record whose field count is not the header's: pandas would
    read a first record with one field too many as an index and shift every
    column of the file by one, so a text with an unquoted comma (a tab in a
    TSV) would silently become a label. And a record that is the header
    again (two exports joined with `cat`), which would train a class "label".
    """
    # The csv module refuses a field over 128 KiB; a long note is data. The
    # limit is the module's own, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    # newline="": lines end at LF, CRLF or a lone CR, as pandas reads them,
    # and a line break inside a quoted field is kept as written.
    lines = io.StringIO(text, newline="")
    reader = csv.reader(lines, delimiter=form.separator, strict=True)
    try:
        first = next(reader, [])
        _refuse_excel_separator_line(path, form.separator.join(first))
        names = [name.strip() for name in first]
        _refuse_repeats(path, names)
        if len(names) == 1:
            _refuse_other_separator(path, first[0], form=form)
        for fields in reader:
            # pandas skips a line that is blank or only spaces, and so do we.
            if not "".join(fields).strip():
                continue
            if len(fields) != len(names):
                raise FedmodelError(
                    f"file {path}, line {reader.line_num} has {len(fields)} "
                    f"{plural(len(fields), 'field')} but the header has "
                    f"{len(names)} ({names}); put "
                    f"a text that holds {form.called}s in double quotes and "
                    "give every line one field per header name"
                )
            if fields[0].strip() == names[0] and [f.strip() for f in fields] == names:
                raise FedmodelError(
                    f"file {path}, line {reader.line_num} repeats the header "
                    f"({names}): were two files joined? "
                    "delete that line (and any later copy of the header)"
                )
    except csv.Error as exc:
        raise FedmodelError(
            f"file {path}, line {reader.line_num} is not valid {form.name} "
            f"({exc}); check its quoting"
        ) from exc


def _refuse_excel_separator_line(path: Path, line: str) -> None:
    """Refuse Excel's `sep=,` line above the header, which pandas reads as one."""
    if line.lower().startswith("sep=") and len(line) <= len("sep=,"):
        raise FedmodelError(
            f"file {path}, line 1 is Excel's {line!r} line, which names the "
            "separator, not the columns; delete it so the header comes first"
        )


def _refuse_other_separator(path: Path, header: str, *, form: _Delimited) -> None:
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


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        names = pq.read_schema(path).names
        _refuse_repeats(path, names)
        table = _with_index_as_columns(pd.read_parquet(path))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise FedmodelError(
            f"file {path} is not a readable Parquet file: "
            f"{str(exc).rstrip('. ')}; re-export it"
        ) from exc
    for column in table.columns:
        values = table[column].tolist()
        if any(isinstance(value, bytes) for value in values):
            texts = [
                _text_of(value, path, column, row)
                for row, value in enumerate(values, start=1)
            ]
            table[column] = pd.Series(texts, index=table.index, dtype=object)
    return table


def _with_index_as_columns(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with its named index levels back as columns, in front.

    `df.set_index("label").to_parquet(...)` stores the column, which the
    schema lists, and pandas reads it back as the index: it is a column.
    """
    named = [name for name in table.index.names if name is not None]
    return table.reset_index(level=named) if named else table


def _text_of(value: object, path: Path, column: object, row: int) -> object:
    """A binary cell as its UTF-8 text: some exporters store strings as bytes."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FedmodelError(
            f"file {path}, row {row} ({ROW_CONVENTION}), column {column!r} holds "
            "bytes that are not UTF-8 text; re-export the column as UTF-8 strings"
        ) from exc
