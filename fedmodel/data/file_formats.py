"""Reading a user's CSV, JSONL or Parquet file into a table, naming what is wrong.

Row numbers in messages are 1-based data rows: the first record is row 1, and a
CSV header is not counted (so CSV row N is on line N + 1 of the file). JSONL
errors about the file's syntax name the line instead.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from fedmodel.errors import FedmodelError

ROW_CONVENTION = "1-based data rows, a CSV header not counted"


def read_table(path: Path, *, key: str) -> pd.DataFrame:
    """Read one CSV / JSONL / Parquet file, chosen by its suffix.

    `key` is the config key the path came from (e.g. "task.train_files[2]"), so
    the message can say where to fix it. Every error a user's file can cause is a
    FedmodelError naming the file.
    """
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".csv": _read_csv,
        ".jsonl": _read_jsonl,
        ".parquet": _read_parquet,
    }
    if not path.exists():
        raise FedmodelError(
            f"{key}: file {path} does not exist (resolved to {path.resolve()}); "
            "fix the path (relative paths are relative to the working directory)"
        )
    if not path.is_file():
        raise FedmodelError(f"{key}: {path} is not a file; point it at a data file")
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise FedmodelError(
            f"{key}: file {path} has the unsupported suffix {path.suffix!r}; "
            f"convert it to one of {sorted(readers)}"
        )
    return reader(path)


def read_utf8(path: Path) -> str:
    """The file's text, naming the line of the first byte that is not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FedmodelError(f"cannot read file {path}: {exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FedmodelError(
            f"file {path} is not UTF-8 text: byte {exc.start} (line {line}) cannot "
            "be decoded; re-save the file as UTF-8"
        ) from exc


def _read_csv(path: Path) -> pd.DataFrame:
    text = read_utf8(path)
    try:
        # Every cell as a string, empty cells as "", so nothing is guessed.
        return pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False
        )
    except pd.errors.EmptyDataError as exc:
        raise FedmodelError(
            f"file {path} is empty (no header, no rows); write a header line with "
            "the text and label columns and at least one row"
        ) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise FedmodelError(
            f"file {path} is not valid CSV: {exc}; check quoting and the number of "
            "fields on that line"
        ) from exc


def _read_jsonl(path: Path) -> pd.DataFrame:
    records: list[dict[str, object]] = []
    for line_number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FedmodelError(
                f"file {path}, line {line_number} is not valid JSON ({exc.msg} at "
                f"column {exc.colno}); write one JSON object per line"
            ) from exc
        if not isinstance(record, dict):
            raise FedmodelError(
                f"file {path}, line {line_number} holds a JSON "
                f"{type(record).__name__}, not an object; write one object per "
                'line, e.g. {"text": "...", "label": "..."}'
            )
        records.append(record)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise FedmodelError(
            f"file {path} is not a readable Parquet file: {exc}; re-export it"
        ) from exc
