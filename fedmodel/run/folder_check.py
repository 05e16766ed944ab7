"""Can a folder be used? Asked before anything is written into it.

A run folder (or a deployment's state or certificate folder) must be
writable; a new run (no `resume=true`) must not start in a folder that holds
another run's results, and a resume must keep the settings that decide each
client's records and, under DP, the settings its privacy plan was calibrated
with (`resumed_settings.py`), and the encoder its checkpoint was trained with
(`resumed_encoder.py`).

Hydra opens the run's log file in the run folder before fedmodel's own code
runs, so `fedmodel simulate` asks through a Hydra callback
(`RunFolderCheck`, listed under `hydra.callbacks` in conf/config.yaml); the
ServerApp asks again for `flwr run`, where Hydra is not involved.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.run.layout import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    ledger_files,
)
from fedmodel.run.resumed_encoder import check_encoder_kept
from fedmodel.run.resumed_settings import check_kept_settings


def check_writable_folder(
    folder: Path,
    *,
    key: str,
    what: str = "the run folder",
    example: str = "outputs/my-run",
    fix: str = "",
) -> None:
    """Refuse a folder that cannot be created or written, naming it and why.

    The folder itself, or its nearest existing parent when it does not exist
    yet, must be a directory in which a file can be created. Nothing is left
    behind. `key` says where the path came from (e.g. "hydra.run.dir" or
    "--state-dir"), `what` what the folder is for, `example` a usable value;
    `fix`, if given, says what to do instead, where no other folder will do.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is a file, not a folder"
    else:
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            problem = f"{existing} cannot be written ({exc.strerror or exc})"
    if problem is not None:
        fix = fix or (
            f"choose a folder you can write (e.g. {key}={example}) or fix its "
            "permissions"
        )
        raise FedmodelError(f"{key}: {what} {folder} cannot be used: {problem}; {fix}")


# How a refused new run names a folder of its own: a single run's, a sweep's.
NEW_RUN_FOLDER = "give this run a folder of its own (hydra.run.dir=...)"
NEW_SWEEP_FOLDER = "give the sweep a folder of its own (hydra.sweep.dir=...)"


def check_run_folder(
    run_dir: Path, settings: RunSettings, *, new_folder: str = NEW_RUN_FOLDER
) -> None:
    """Refuse a run the folder's earlier contents do not allow.

    A new run (no `resume=true`) does not start where a run left results: it
    would replace that run's model and summary, and its clients would find
    their ledgers already charged; `new_folder` says how to name another
    (a sweep's job: NEW_SWEEP_FOLDER). A resume keeps the settings that decide
    each client's records and, under DP, those its privacy plan was
    calibrated with, and the run's encoder. Hydra's own files (`.hydra/`, the
    log) do not count.
    """
    if settings.resume:
        check_kept_settings(run_dir, asdict(settings))
        check_encoder_kept(run_dir, settings)
        return
    found = [
        name
        for name in (SUMMARY_FILE, METRICS_FILE, f"{CHECKPOINT_DIR}/{CHECKPOINT_FILE}")
        if (run_dir / name).is_file()
    ]
    found += [str(path.relative_to(run_dir)) for path in ledger_files(run_dir)]
    if found:
        raise FedmodelError(
            f"the run folder {run_dir} already holds a run ({', '.join(found[:3])}"
            f"{', ...' if len(found) > 3 else ''}): continue it with resume=true, "
            f"or {new_folder}"
        )


class UnusableRunFolder(SystemExit):
    """The run folder's refusal, out of a Hydra callback to the command.

    Hydra turns an `Exception` raised in a callback into a warning and goes
    on, so this is a `SystemExit` (code 2, a user error); the command prints
    `message` in its one-line format (cli/errors.py).
    """

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class RunFolderCheck(Callback):
    """Hydra callback: refuse a run folder that is not writable.

    Runs before Hydra creates the folder and opens its log file there, whose
    failure would otherwise end in `ValueError: Unable to configure handler`.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check `hydra.run.dir` of a single run."""
        _check(Path(str(config.hydra.run.dir)), key="hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check `hydra.sweep.dir` of a multirun."""
        _check(Path(str(config.hydra.sweep.dir)), key="hydra.sweep.dir")


def _check(folder: Path, *, key: str) -> None:
    try:
        check_writable_folder(Path(os.path.abspath(folder)), key=key)
    except FedmodelError as exc:
        raise UnusableRunFolder(str(exc)) from None
