"""Reading back the text files a run folder keeps, naming any that does not parse.

fedmodel and Hydra write them (resolved_config.yaml, summary.json,
metrics.jsonl, .hydra/overrides.yaml), but they are plain text a user may
edit, and a disk that fills during a write can leave one cut short. A file
that cannot be read is a FedmodelError naming it, the line and column where
parsing stopped, and what to do; never a parser's traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fedmodel.errors import FedmodelError


def parsed_file(path: Path, *, fix: str) -> Any:
    """What the JSON (by its `.json` suffix) or YAML file at `path` holds.

    A file that cannot be read or parsed is a FedmodelError naming it and
    where, ending with `fix` (what the user can do about it).
    """
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise unreadable(path, exc, fix=fix) from exc


def recorded_line(path: Path) -> str | None:
    """The one line a start keeps in `path` (a digest), or None if it kept none.

    A missing file is an older run folder's; one that cannot be read is an
    error naming it, never read as missing, which would skip a resume's check.
    """
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        fix = "make it readable, or start a new run in a new folder"
        raise unreadable(path, exc, fix=fix) from exc


def parsed_mapping(path: Path, *, fix: str) -> dict[str, Any]:
    """`parsed_file(path)`, refused unless it holds a mapping (a JSON object)."""
    value = parsed_file(path, fix=fix)
    if not isinstance(value, dict):
        raise FedmodelError(f"{path} does not hold a mapping: {fix}")
    return value


def unreadable(
    path: Path, exc: Exception, *, fix: str, line: int | None = None
) -> FedmodelError:
    """The error for `path`, which `exc` stopped reading.

    `line` is the file's line number where `exc` parsed that line alone.
    """
    where = ""
    if isinstance(exc, json.JSONDecodeError):
        where = f" at line {line or exc.lineno}, column {exc.colno}"
        problem = exc.msg
    elif isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = str(exc.problem or exc.context)
    elif isinstance(exc, UnicodeDecodeError):
        problem = f"it is not UTF-8 text (byte {exc.start})"
    elif isinstance(exc, OSError):
        problem = exc.strerror or str(exc)
    else:
        problem = str(exc)
    return FedmodelError(f"{path} cannot be read{where}: {problem}; {fix}")
