"""What a start the checks refused removes from its run folder: only what it made.

Hydra makes the run folder (outputs/<date>/<time>-<task> by default) and
writes its .hydra files before fedmodel's checks run, and the log and
Flower's folder come next. A refused start removes them where the folder
holds nothing else and no earlier run wrote into it; a folder that existed
before the command (one the user made and named with hydra.run.dir, its
.hydra, an outputs/ folder) stays, and `hydra_files_kept_if_refused` takes
Hydra's files out of a .hydra that was there.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fedmodel.cli.hydra_files import HYDRA_DIR
from fedmodel.run.console import close_log_file
from fedmodel.run.layout import FLWR_HOME_DIR, LOG_FILE

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
