"""Can the run folder (or a deployment's folder) be written? Asked first.

Hydra opens the run's log file in the run folder before fedmodel's own code
runs, so `fedmodel simulate` asks through a Hydra callback
(`RunFolderCheck`, listed under `hydra.callbacks` in conf/config.yaml); the
ServerApp asks again for `flwr run`, where Hydra is not involved.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fedmodel.errors import FedmodelError
from fedmodel.run.console import setup_logging


def check_writable_folder(
    folder: Path,
    *,
    key: str,
    what: str = "the run folder",
    example: str = "outputs/my-run",
) -> None:
    """Refuse a folder that cannot be created or written, naming it and why.

    The folder itself, or its nearest existing parent when it does not exist
    yet, must be a directory in which a file can be created. Nothing is left
    behind. `key` says where the path came from (e.g. "hydra.run.dir" or
    "--state-dir"), `what` what the folder is for, `example` a usable value.
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
        raise FedmodelError(
            f"{key}: {what} {folder} cannot be used: {problem}; choose a folder "
            f"you can write (e.g. {key}={example}) or fix its permissions"
        )


class RunFolderCheck(Callback):
    """Hydra callback: stop with exit code 2 if the run folder is not writable.

    Runs before Hydra creates the folder and opens its log file there, whose
    failure would otherwise end in `ValueError: Unable to configure handler`.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check `hydra.run.dir` of a single run."""
        _check_or_exit(Path(str(config.hydra.run.dir)), key="hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check `hydra.sweep.dir` of a multirun."""
        _check_or_exit(Path(str(config.hydra.sweep.dir)), key="hydra.sweep.dir")


def _check_or_exit(folder: Path, *, key: str) -> None:
    try:
        check_writable_folder(Path(os.path.abspath(folder)), key=key)
    except FedmodelError as exc:
        setup_logging()
        logging.getLogger("fedmodel").error("%s", exc)
        raise SystemExit(2) from None
