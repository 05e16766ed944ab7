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

from fedmodel.config.file_paths import with_absolute_paths
from fedmodel.run.layout import RESOLVED_CONFIG


def stored_config(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's resolved config, its paths absolute; None if it has none."""
    path = run_dir / RESOLVED_CONFIG
    stored = yaml.safe_load(path.read_text()) if path.is_file() else None
    if not isinstance(stored, dict):
        return None
    return with_absolute_paths(stored, base=started_in(run_dir))


def started_in(run_dir: Path) -> Path | None:
    """The working directory Hydra recorded for the run's last start, if it did."""
    try:
        raw = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())
        return Path(str(raw["hydra"]["runtime"]["cwd"]))
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
