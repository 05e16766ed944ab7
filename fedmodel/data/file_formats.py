"""Reading a user's CSV, TSV, JSONL or Parquet file into a table, naming what is wrong.

Row numbers in messages count records, not lines: the first record is row 1,
and a CSV or TSV header, a blank line and the line breaks inside a quoted
text are not counted (a spreadsheet shows row N one below, under its header).
A cell's error in a CSV, TSV or JSONL file names the line its row starts on
too (`file_cells.py`); errors about a file's syntax name the line instead.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedmodel.config.train_files import TABLE_SUFFIXES
from fedmodel.data.column_names import refuse_repeated_columns
from fedmodel.data.delimited_file import CSV, TSV, read_delimited
from fedmodel.data.jsonl_file import read_jsonl
from fedmodel.data.text_file import file_bytes
from fedmodel.errors import FedmodelError

ROW_CONVENTION = "records counted from 1, not lines: no header or blank line counts"
# The one rule for an empty cell, in every reader (CSV, TSV, JSONL, Parquet, a
# site's file, `fedmodel predict --input`): a cell is missing when it is null
# (JSON null, a Parquet null), a NaN number, blank, or the text NaN in any
# case, which is what pandas and numpy write for a missing number. Any other
# text ("NA", "none", "null") is an ordinary value.
MISSING_RULE = "null, a NaN number, blank, or the text 'NaN' in any case"


def read_table(
    path: Path,
    *,
    key: str,
    other_suffixes: Sequence[str] = (),
    bytes_read: Callable[[bytes], object] | None = None,
) -> pd.DataFrame:
    """Read one CSV / TSV / JSONL / Parquet file, chosen by its suffix.

    `key` is the config key the path came from (e.g. "task.train_files[2]"), so
    the message can say where to fix it. Every error a user's file can cause is a
    FedmodelError naming the file. `other_suffixes` are those the caller reads
    itself (`.txt`), named with the tables' where a suffix is refused. The
    file is read once; `bytes_read`, if given, is handed the bytes the table
    is parsed from (`file_bytes`).
    """
    readers: dict[str, Callable[[Path, bytes], pd.DataFrame]] = {
        ".csv": partial(read_delimited, form=CSV),
        ".tsv": partial(read_delimited, form=TSV),
        ".jsonl": read_jsonl,
        ".parquet": _read_parquet,
    }
    check_is_file(path, key=key)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        known = sorted([*TABLE_SUFFIXES, *other_suffixes])
        raise FedmodelError(
            f"{key}: file {path} has the unsupported suffix {path.suffix!r}; "
            f"{_conversion(path)}, one of {known}"
        )
    reader = readers[path.suffix.lower()]
    try:
        table = reader(path, file_bytes(path, bytes_read=bytes_read))
        refuse_repeated_columns(path, [str(c) for c in table.columns])
    except FedmodelError as exc:
        # The readers name the file and line; the key says which setting.
        raise FedmodelError(f"{key}: {exc}") from exc
    return table


def _conversion(path: Path) -> str:
    """How to turn a file of an unread suffix into a table fedmodel reads.

    Named for the exports a site most often has instead: a compressed file, a
    JSON list of records (a web tool's or `to_json`'s), a spreadsheet, a
    table saved as text.
    """
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return "decompress it (gunzip) and name the file it gives"
    if suffix == ".json":
        return (
            "write its records one JSON object per line and name that file "
            f"(`jq -c '.[]' {path.name} > {path.stem}.jsonl` does so for a list "
            "of objects)"
        )
    if suffix in (".xlsx", ".xls", ".ods"):
        return "save the sheet as 'CSV UTF-8' from the spreadsheet and name that file"
    if suffix == ".txt":
        # A spreadsheet's "Text (Tab delimited)" export is a TSV named .txt.
        return (
            "a table saved as text is read by its separator's suffix: rename it "
            "to .tsv if tab-separated (a spreadsheet's 'Text (Tab delimited)' "
            "export), to .csv if comma-separated"
        )
    return "convert it to a file fedmodel reads and name that"


def check_is_file(path: Path, *, key: str) -> None:
    """Refuse a path that does not exist or is a folder, naming the fix."""
    if not path.exists():
        glob = any(c in path.name for c in "*?[")
        pattern = glob and not key.startswith("task.train_files")
        # Paths come absolute (config/file_paths.py): only links can lead
        # elsewhere.
        resolved = path.resolve()
        leads = "" if resolved == path else f" (resolved to {resolved})"
        raise FedmodelError(
            f"{key}: file {path} does not exist{leads}; "
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


def is_missing(value: object) -> bool:
    """Whether a cell counts as empty: see `MISSING_RULE`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if not isinstance(value, str) and pd.api.types.is_scalar(value):
        if pd.isna(value):
            return True
    text = str(value).strip()
    return not text or text.lower() == "nan"


def _read_parquet(path: Path, raw: bytes) -> pd.DataFrame:
    try:
        names = pq.read_schema(io.BytesIO(raw)).names
        refuse_repeated_columns(path, names)
        table = _with_index_as_columns(pd.read_parquet(io.BytesIO(raw)))
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
