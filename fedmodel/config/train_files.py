"""task=files' train files: patterns expanded, one client per file by default.

Both happen in `settings_from_dict`, before any plan is calibrated, so the
resolved config, `fedmodel privacy-plan` and the run hold the same list of
files and the same client count.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedmodel.config.wording import first_ten, plural
from fedmodel.errors import FedmodelError

# The column a files task gives each training record: its train file's index.
# Natural partitioning on it (the default for task=files) makes the files the
# clients.
SITE_COLUMN = "site"
# What makes an entry of task.train_files a pattern (Python's glob syntax).
_PATTERN_CHARACTERS = frozenset("*?[")
# The suffixes of a file of records (`fedmodel.data.file_formats` reads them).
TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet", ".tsv")


def with_train_files(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with `task.train_files` patterns expanded, then its client count.

    A pattern (`sites/*.csv`, `data/**/train.parquet`) becomes the files it
    matches, sorted, so client i is the i-th of them in every process; a name
    that exists as written is a file, whatever its characters. The paths are
    absolute by now (`with_absolute_paths`), and so are the files matched. A
    null `num_clients` (task=files' default) becomes the number of files.
    """
    task = raw.get("task")
    if not isinstance(task, Mapping):
        return raw  # `build_typed` names the missing or mistyped key
    files = task.get("train_files")
    if not isinstance(files, list):
        return raw
    expanded = _expanded(files, server_files=_server_files(task))
    if expanded != files:
        raw = {**raw, "task": {**task, "train_files": expanded}}
    return _with_client_count(raw, expanded)


def _server_files(task: Mapping[str, Any]) -> dict[Path, str]:
    """The server's own files (resolved path: key), which no pattern may match."""
    keys = ("test_file", "validation_file")
    return {
        Path(task[key]).resolve(): f"task.{key}"
        for key in keys
        if isinstance(task.get(key), str) and task[key]
    }


def _expanded(files: list[Any], *, server_files: dict[Path, str]) -> list[Any]:
    expanded: list[Any] = []
    for i, name in enumerate(files):
        if not _is_pattern(name):
            expanded.append(name)
            continue
        matches = sorted(glob.glob(name, recursive=True))
        if not matches:
            raise FedmodelError(
                f"task.train_files[{i}]={name!r} matches no file (a pattern "
                "given relative is taken from the working directory); fix the "
                "pattern or list the files"
            )
        pattern = f"task.train_files[{i}]={name!r}"
        _refuse_left_out_by_case(name, matches, pattern=pattern)
        for match in matches:
            _check_match(Path(match), pattern=pattern, server_files=server_files)
        expanded.extend(matches)
    return expanded


def _refuse_left_out_by_case(name: str, matches: list[str], *, pattern: str) -> None:
    """Refuse a pattern that leaves out a file it would match but for letter case.

    `sites/*.csv` leaves out a `site_c.CSV` beside the others (an export from
    another system), and that site would silently take no part in the run.
    """
    # The file names only: a folder beside the one named that differs in case
    # (Sites/ and sites/) is another folder, not an export's spelling.
    folder, file_name = os.path.split(name)
    any_case = os.path.join(folder, _any_case(file_name))
    left_out = sorted(set(glob.glob(any_case, recursive=True)) - set(matches))
    if left_out:
        count = len(left_out)
        raise FedmodelError(
            f"{pattern} leaves out {plural(count, 'the file', 'the files')} "
            f"{first_ten(left_out)}, which it would match but for letter case "
            f"(an export from another system, such as a '.CSV'): "
            f"{plural(count, 'that site', 'those sites')} would take no part in "
            f"the run. Rename {plural(count, 'it', 'them')} to match the "
            "pattern, or list the files, so that every site's file is named"
        )


def _any_case(name: str) -> str:
    """`name`, a glob pattern, matching its letters in either case.

    Python 3.11 has no case-blind glob: `fnmatch` folds case on Windows alone;
    pathlib's `case_sensitive=` (3.12) folds [...] too, and its `*` takes dot files.
    """
    out: list[str] = []
    in_class = False
    for char in name:
        if in_class:
            in_class = char != "]"
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
        elif char.lower() != char.upper():
            out.append(f"[{char.lower()}{char.upper()}]")
        else:
            out.append(char)
    return "".join(out)


def _check_match(match: Path, *, pattern: str, server_files: dict[Path, str]) -> None:
    """Refuse a server's file, a folder or no table a pattern matched, naming both."""
    key = server_files.get(match.resolve())
    if key is not None:
        raise FedmodelError(
            f"{pattern} matches {key} ({match}), which would make the server's "
            "file a site's too; narrow the pattern, or keep the sites' files in "
            "a folder of their own"
        )
    if match.is_dir():
        # Read as a site's file, the folder would be refused as one the user
        # named, with advice to name the files inside it: sites of their own.
        raise FedmodelError(
            f"{pattern} matches the folder {match}, and a pattern stands for "
            "the sites' files only: narrow it (to their suffix, e.g. '*.csv'), "
            "or move the folder elsewhere (a table written as a folder of "
            "parts: write it out as one file)"
        )
    if match.suffix.lower() not in TABLE_SUFFIXES:
        # Read as a site's file, it would be refused with advice to convert
        # it: a README or a workbook beside the exports is no site.
        raise FedmodelError(
            f"{pattern} matches {match}, which is no file of records (a pattern "
            f"stands for the sites' files, each one of {list(TABLE_SUFFIXES)}): "
            "narrow the pattern (to their suffix, e.g. '*.csv'), or move that "
            "file elsewhere"
        )


def _is_pattern(name: Any) -> bool:
    return (
        isinstance(name, str)
        and not _PATTERN_CHARACTERS.isdisjoint(name)
        and not Path(name).exists()
    )


def _with_client_count(raw: dict[str, Any], files: list[Any]) -> dict[str, Any]:
    """`raw` with a null `num_clients` (task=files' default) set to one per file."""
    if raw.get("num_clients") is not None:
        return raw
    other_clients = _clients_other_than_files(raw.get("partition"))
    if other_clients:
        raise FedmodelError(
            "num_clients is not set (task=files counts one client per train "
            f"file only under partition=natural on the files), and "
            f"{other_clients}: set num_clients, e.g. num_clients=4"
        )
    if not files:
        raise FedmodelError(
            "num_clients is not set (task=files: one client per file of "
            "task.train_files) and task.train_files is empty: list one CSV / "
            "TSV / JSONL / Parquet file per site, e.g. "
            "task.train_files='[site0.csv,site1.csv]', or set num_clients (in a "
            "deployment: the number of sites)"
        )
    return {**raw, "num_clients": len(files)}


def _clients_other_than_files(partition: Any) -> str:
    """How a partition makes clients other than the train files; "" if it does not."""
    partition = partition if isinstance(partition, Mapping) else {}
    if partition.get("name") != "natural":
        return f"partition={partition.get('name')} deals the records out again"
    if partition.get("column") not in (None, SITE_COLUMN) or partition.get(
        "label_groups"
    ):
        return (
            "with partition.column or partition.label_groups the groups are the clients"
        )
    return ""
