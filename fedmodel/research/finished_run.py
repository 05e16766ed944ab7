"""A finished run folder's settings and summary, read without importing torch.

`fedmodel audit` reads the folder here before it imports torch, transformers
and the data code (seconds), so a wrong folder is answered at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_manifest import MANIFEST
from fedmodel.run.layout import (
    FINISHED_RUN_FILES,
    RESOLVED_CONFIG,
    SUMMARY_FILE,
    checkpoint_file,
)
from fedmodel.run.run_files import parsed_mapping
from fedmodel.run.stored_config import stored_config, stored_settings

FinishedRun = tuple[RunSettings, dict[str, Any]]


def load_run(run_dir: Path) -> FinishedRun:
    """A finished run's settings and summary, or a clear error."""
    if not run_dir.exists():
        raise FedmodelError(
            f"run folder {run_dir} does not exist: give the folder of a finished "
            "`fedmodel simulate` run"
        )
    if not run_dir.is_dir():
        raise FedmodelError(
            f"{run_dir} is a file, not a run folder: give the folder of a "
            "finished `fedmodel simulate` run"
        )
    _refuse_a_model_folder(run_dir)
    _refuse_a_sweep_folder(run_dir)
    for name in FINISHED_RUN_FILES:
        if not (run_dir / name).is_file():
            raise FedmodelError(
                f"{run_dir} has no {name}: give the folder of a finished "
                f"`fedmodel simulate` run{_unfinished(run_dir, name)}"
            )
    raw = stored_config(run_dir, files_read_by="fedmodel audit")
    summary = parsed_mapping(
        run_dir / SUMMARY_FILE, fix="restore it: the audit reads the run's results"
    )
    assert raw is not None  # the file is there (above); one that is no mapping raised
    return stored_settings(run_dir, raw, then="audit it"), summary


def _refuse_a_model_folder(folder: Path) -> None:
    """Name the run folder when given the model folder (model/, student/) inside."""
    if (folder / "config.json").is_file() and (
        folder.parent / RESOLVED_CONFIG
    ).is_file():
        raise FedmodelError(
            f"{folder} is a model folder inside the run folder {folder.parent}: "
            "give the run folder"
        )


def _refuse_a_sweep_folder(folder: Path) -> None:
    """Name a job's folder when given a --multirun sweep's folder, which holds jobs."""
    if not (folder / MANIFEST).is_file() or (folder / RESOLVED_CONFIG).is_file():
        return
    jobs = sorted(config.parent for config in folder.glob(f"*/{RESOLVED_CONFIG}"))
    example = f", e.g. {jobs[0]}" if jobs else ""
    raise FedmodelError(
        f"{folder} is a --multirun sweep's folder ({MANIFEST}), one run per job: "
        f"give the folder of the job to audit{example}"
    )


def _unfinished(run_dir: Path, missing: str) -> str:
    """What finishes a run stopped after a checkpointed round, before its summary."""
    if missing != SUMMARY_FILE or not checkpoint_file(run_dir).is_file():
        return ""
    return (
        f"; this one was stopped before it finished: `fedmodel resume {run_dir}` "
        "finishes it"
    )
