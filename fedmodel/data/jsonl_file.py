"""A user's JSONL file as a table, one JSON object a line, naming the line at fault."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fedmodel.config.wording import plural
from fedmodel.data.text_file import RECORD_LINES, decode_utf8, text_lines
from fedmodel.errors import FedmodelError

# JSON's names for what a line may hold instead of an object; null, true and
# false are said by `_json_kind` itself (a bool is an int to Python).
_JSON_KINDS: dict[type, str] = {
    list: "a JSON array",
    str: "a JSON string",
    int: "a JSON number",
    float: "a JSON number",
}


def read_jsonl(path: Path, raw: bytes) -> pd.DataFrame:
    """A JSONL file's bytes, one record per non-blank line, each a JSON object."""
    records: list[dict[str, object]] = []
    starts: list[int] = []
    text = decode_utf8(raw, source=f"file {path}")
    for line_number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        try:
            # A BOM opens a line where files that began with one were joined
            # (`cat`); the file's own first one is gone already.
            record = json.loads(
                line.removeprefix("\ufeff"), object_pairs_hook=_unique_keys
            )
        except _RepeatedKeys as exc:
            raise FedmodelError(
                f"file {path}, line {line_number}: the "
                f"{plural(len(exc.args[0]), 'key')} {exc.args[0]} "
                f"{plural(len(exc.args[0]), 'appears', 'appear')} more than once in "
                "one object; keep one value per key"
            ) from exc
        except json.JSONDecodeError as exc:
            raise FedmodelError(
                f"file {path}, line {line_number} is not valid JSON ({exc.msg} at "
                f"column {exc.colno}); write one JSON object per line"
            ) from exc
        if not isinstance(record, dict):
            raise FedmodelError(
                f"file {path}, line {line_number} holds {_json_kind(record)}, not "
                "an object; write one object per line, with the column names "
                "(the text's, and the label's in a labelled file) as its keys"
            )
        records.append(record)
        starts.append(line_number)
    table = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    table.attrs[RECORD_LINES] = np.array(starts)
    return table


def _json_kind(value: object) -> str:
    """What JSON calls `value`: `JSON null`, `a JSON array`, not Python's names."""
    if value is None or isinstance(value, bool):
        return f"JSON {json.dumps(value)}"
    return _JSON_KINDS[type(value)]


class _RepeatedKeys(ValueError):
    """A JSON object names a key twice (json.loads would keep the last)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise _RepeatedKeys(repeated)
    return dict(pairs)
