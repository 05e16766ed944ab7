"""A start refused in an earlier run's folder: that run's .hydra files put back.

Hydra writes the launch's config, its own config and the overrides into
RUN/.hydra before fedmodel's checks run. A start into an earlier run's folder
that the checks refuse (a resume with a changed key, a new run in a used
folder, typed by hand or run by `fedmodel resume`) would leave its overrides
as the run's, and the next `fedmodel resume` would replay them: a refused
start leaves the run's .hydra files as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from fedmodel.cli.hydra_files import HYDRA_DIR
from fedmodel.research.sweep_manifest import MANIFEST
from fedmodel.run.layout import RESOLVED_CONFIG


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
            # Only what the start changed is written: a folder on a read-only
            # mount, refused for it, was changed in nothing.
            if not folder.is_dir():  # a refused start may remove it
                folder.mkdir(parents=True)
            for path in folder.iterdir():
                if path.is_file() and path not in saved:
                    path.unlink()  # written by this start alone
            for path, content in saved.items():
                if _content(path) != content:
                    path.write_bytes(content)


@contextlib.contextmanager
def sweep_files_kept_if_refused(sweep_dir: Path | None) -> Iterator[None]:
    """Put back what a refused sweep wrote over in an earlier sweep's folder.

    Hydra writes multirun.yaml, then each job's .hydra files, before that job's
    checks: a job refused in an earlier run's folder keeps that run's files
    (`hydra_files_kept_if_refused`), and a sweep refused before any of its jobs
    ran keeps the earlier sweep's multirun.yaml, which `sweep-report` reads to
    name the jobs that never ran.
    """
    if sweep_dir is None or not sweep_dir.is_dir():
        yield
        return
    manifest = sweep_dir / MANIFEST
    saved = _content(manifest)
    configs = _resolved_configs(sweep_dir)
    jobs = sorted({p.parent for p in sweep_dir.rglob(HYDRA_DIR) if p.is_dir()})
    started = False
    with contextlib.ExitStack() as stack:
        for job in jobs:
            stack.enter_context(hydra_files_kept_if_refused(job))
        try:
            yield
            started = True
        finally:
            none_ran = _resolved_configs(sweep_dir) == configs
            if not started and none_ran and saved is not None:
                if _content(manifest) != saved:
                    manifest.write_bytes(saved)


def _resolved_configs(folder: Path) -> dict[Path, bytes]:
    """Each run's resolved config under `folder`: a job that ran wrote its own."""
    return {p: p.read_bytes() for p in folder.rglob(RESOLVED_CONFIG) if p.is_file()}


def _content(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None
