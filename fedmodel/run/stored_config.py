"""A run folder's resolved config, read back with its data files' paths absolute.

fedmodel stores every data file's path absolute (`with_absolute_paths`), so a
resume, `fedmodel audit` or a `flwr run` ServerApp finds a run's files from
any folder. A run folder written before it did names them as they were
typed, relative to the folder the run was started in; they are taken from
the folder Hydra recorded there (`.hydra/hydra.yaml`, written again by each
`fedmodel simulate` start and resume), else from the working directory, as
that code took them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fedmodel.config import RunSettings, settings_from_dict
from fedmodel.config.file_paths import relative_paths, with_absolute_paths
from fedmodel.errors import FedmodelError
from fedmodel.run.layout import HYDRA_DIR, RESOLVED_CONFIG
from fedmodel.run.run_files import parsed_mapping

# Hydra's record of a start: its own settings, overrides and working directory.
HYDRA_RECORD = Path(HYDRA_DIR) / "hydra.yaml"
_CONFIG_FIX = (
    "restore it or undo the edit: it holds the settings the run's records and "
    "privacy plan were drawn with, which a resume and an audit check against"
)


def stored_config(
    run_dir: Path, *, files_read_by: str | None = None
) -> dict[str, Any] | None:
    """The run folder's resolved config, its paths absolute; None if it has none.

    `files_read_by` names the command that reads the run's data files here
    (`fedmodel audit`): an older run's relative path that the folder does not
    place, and that names no file from the working directory, is then an
    error saying to run that command from where the run began. A resume does
    not pass it: a deployed server may hold none of the clients' files.
    """
    path = run_dir / RESOLVED_CONFIG
    if not path.is_file():
        return None
    stored = parsed_mapping(path, fix=_CONFIG_FIX)  # an emptied file too
    started = started_in(run_dir)
    if started is None and files_read_by is not None:
        _check_relative_paths(run_dir, stored, command=files_read_by)
    return with_absolute_paths(stored, base=started)


def stored_settings(run_dir: Path, raw: dict[str, Any], *, then: str) -> RunSettings:
    """`raw`, the run folder's resolved config, as settings; `then`: what to do.

    A key added or removed since the run was made: its settings cannot be
    rebuilt as they were, and guessing one could describe the wrong run, so
    the error says to `then` (say, "audit it") with the version that made it.
    """
    try:
        return settings_from_dict(raw)
    except FedmodelError as exc:
        raise FedmodelError(
            f"{run_dir / RESOLVED_CONFIG} does not match this fedmodel's config "
            f"({exc}); the run was likely made by another fedmodel version: "
            f"{then} with the version that made it"
        ) from exc


def started_in(run_dir: Path) -> Path | None:
    """The working directory Hydra recorded for the run's last start, if it did."""
    try:
        return Path(str(hydra_record(run_dir)["runtime"]["cwd"]))
    except (KeyError, TypeError):
        return None


def hydra_record(run_dir: Path) -> dict[str, Any]:
    """Hydra's record of the run's last start (`hydra:` in HYDRA_RECORD); {} if none.

    A missing or unreadable file, or one without that mapping, reads as none.
    """
    try:
        raw = yaml.safe_load((run_dir / HYDRA_RECORD).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    record = raw.get("hydra") if isinstance(raw, dict) else None
    return record if isinstance(record, dict) else {}


def _check_relative_paths(run_dir: Path, raw: dict[str, Any], *, command: str) -> None:
    """Say where to run `command` from when an older run's relative paths miss.

    Where the run folder does not record the folder the run began in (no
    `.hydra/hydra.yaml`: a `flwr run` ServerApp's), its relative paths are
    read from the working directory.
    """
    for key, value in relative_paths(raw):
        if Path(value).expanduser().exists():
            continue
        raise FedmodelError(
            f"{run_dir / RESOLVED_CONFIG} names {key}={value!r}, a path relative to "
            "the folder the run was started in (its run folder does not record "
            f"which), and {Path.cwd()} holds no such file: run `{command}` "
            "from that folder"
        )
