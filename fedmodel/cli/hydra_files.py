"""A refused `fedmodel simulate` start leaves a run folder's .hydra files as they were.

Hydra writes the launch's config, its own config and the overrides into
RUN/.hydra before fedmodel's checks run. A start into an earlier run's folder
that the checks refuse (a resume with a changed key, a new run in a used
folder, typed by hand or run by `fedmodel resume`) would leave its overrides
as the run's, and the next `fedmodel resume` would replay them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from fedmodel.run.layout import RESOLVED_CONFIG

HYDRA_DIR = ".hydra"
# The override that names the run folder of a single run.
RUN_DIR_KEY = "hydra.run.dir"


def run_dir_override(run_dir: Path) -> str:
    """The override that names `run_dir` as the run's folder."""
    return f"{RUN_DIR_KEY}={run_dir}"


def named_run_dir(overrides: list[str]) -> Path | None:
    """The folder `hydra.run.dir=` names among `overrides` (the last one), if any.

    Read with Hydra's own parser, quotes and escapes and all; None where it
    cannot parse them (Hydra then names the override) or none names it.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return None
    named = [
        o.value()
        for o in parsed
        if o.key_or_group == RUN_DIR_KEY and not o.is_delete()
    ]
    return Path(named[-1]) if named and isinstance(named[-1], str) else None


@contextlib.contextmanager
def hydra_files_kept_if_refused(run_dir: Path | None) -> Iterator[None]:
    """Put back `run_dir`'s .hydra files unless the start inside got past the checks.

    A start that got past them wrote the run's resolved config and returned;
    one refused (or stopped before that) left the config as it was, and so the
    run's settings: the files Hydra wrote give way to the run's own.
    """
    folder = None if run_dir is None else run_dir / HYDRA_DIR
    if folder is None or not folder.is_dir():
        yield
        return
    saved = {p: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    config = _content(folder.parent / RESOLVED_CONFIG)
    started = False
    try:
        yield
        started = True
    finally:
        if not started and _content(folder.parent / RESOLVED_CONFIG) == config:
            folder.mkdir(parents=True, exist_ok=True)  # a refused start may remove it
            for path in folder.iterdir():
                if path.is_file() and path not in saved:
                    path.unlink()  # written by this start alone
            for path, content in saved.items():
                path.write_bytes(content)


def _content(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None
