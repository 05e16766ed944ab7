"""A start the checks refused leaves its run folder as it was.

Hydra makes the run folder (outputs/<date>/<time>-<task> by default) and
writes its .hydra files (the launch's config, its own config and the
overrides) before fedmodel's checks run, and the log and Flower's folder come
next. A refused start removes them where the folder holds nothing else and no
earlier run wrote into it (`remove_if_unused`); a folder that existed before
the command (one the user made and named with hydra.run.dir, its .hydra, an
outputs/ folder) stays (`folders_before`).

In an earlier run's folder (a resume with a changed key, a new run in a used
folder, typed by hand or run by `fedmodel resume`) the overrides Hydra wrote
would stand as the run's, and the next `fedmodel resume` would replay them:
a refused start puts back the run's .hydra files
(`hydra_files_kept_if_refused`), and a refused sweep the earlier sweep's
(`sweep_files_kept_if_refused`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fedmodel.research.sweep_manifest import MANIFEST
from fedmodel.run.console import close_log_file
from fedmodel.run.layout import FLWR_HOME_DIR, HYDRA_DIR, LOG_FILE, RESOLVED_CONFIG

# What a run folder holds before any round: Hydra's files, the log, and
# Flower's, which the server's checks before round 1 find already written.
BEFORE_ANY_ROUND = {HYDRA_DIR, LOG_FILE, FLWR_HOME_DIR}
# hydra.run.dir's default (conf/config.yaml): outputs/<date>/<time>-<task>.
DEFAULT_OUTPUTS = "outputs"
DAY_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class FoldersBefore:
    """The folders a refused start keeps, as they were before Hydra ran."""

    # Hydra's default outputs/ folder, resolved, where this command makes it.
    new_outputs: Path | None
    # The folder hydra.run.dir names and its .hydra, resolved, where they exist.
    kept: frozenset[Path]


def folders_before(named: Path | None) -> FoldersBefore:
    """What exists now of outputs/ and of the run folder `named` (hydra.run.dir).

    Called before Hydra runs, from the folder the command was typed in.
    """
    outputs = Path(DEFAULT_OUTPUTS).resolve()
    folders = () if named is None else (named, named / HYDRA_DIR)
    return FoldersBefore(
        new_outputs=None if outputs.exists() else outputs,
        kept=frozenset(folder.resolve() for folder in folders if folder.exists()),
    )


def remove_if_unused(
    run_dir: Path, *, earlier_run: bool, before: FoldersBefore
) -> None:
    """Remove what Hydra and Flower wrote into a run folder the checks rejected.

    Only when the folder holds nothing else (a resumed run's folder is kept)
    and no earlier run wrote into it: a run stopped before round 1 leaves its
    log and Flower's files, and the log says why it stopped. Of the folders
    `before` keeps, only what this start wrote inside is removed.
    """
    close_log_file()
    names = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else None
    if earlier_run or names is None or names - BEFORE_ANY_ROUND:
        return
    for folder in (run_dir / HYDRA_DIR, run_dir / FLWR_HOME_DIR):
        if folder.resolve() not in before.kept:
            shutil.rmtree(folder, ignore_errors=True)
    (run_dir / LOG_FILE).unlink(missing_ok=True)
    if run_dir.resolve() in before.kept:
        return
    run_dir.rmdir()
    # Hydra's default folder (outputs/<date>/<time>-<task>) leaves its date
    # folder behind, and outputs/ where this command made it; only those,
    # and only empty.
    day = run_dir.parent
    if day.parent.name == DEFAULT_OUTPUTS and DAY_FOLDER.fullmatch(day.name):
        with contextlib.suppress(OSError):
            day.rmdir()
            if day.parent.resolve() == before.new_outputs:
                before.new_outputs.rmdir()


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
