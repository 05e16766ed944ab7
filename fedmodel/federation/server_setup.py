"""Before round 1: the settings, the run folder, its resolved config, the node count.

A kill leaves at most a half-written temp file behind (`state.pt.tmp`, a
ledger's `.privacy_ledger.json.<random>.tmp`, the resolved config's); the next
start removes them. The model's start and a resume are `server_model`'s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from flwr.serverapp import Grid

from fedmodel.config import (
    RunSettings,
    compose_config,
    from_run_config,
    settings_from_dict,
)
from fedmodel.config.compose import refuse_run_folder_key
from fedmodel.config.deployment import check_deployment_settings
from fedmodel.config.file_paths import relative_paths
from fedmodel.config.modes import SIMULATION
from fedmodel.config.repeated_keys import refuse_repeated_keys
from fedmodel.config.run_config import FLWR_RUN_FOLDER, app_overrides
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.privacy.durable_file import remove_stale_temp_files, write_durably
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE, LEDGER_FILE
from fedmodel.run.checkpoint import remove_stale_checkpoint
from fedmodel.run.layout import (
    CHECKPOINT_DIR,
    CLIENTS_DIR,
    RESOLVED_CONFIG,
    START_RECORDS,
)
from fedmodel.run.metrics import numbered_name
from fedmodel.run.resumed_settings import changed_keys
from fedmodel.run.stored_config import stored_config
from fedmodel.run.task_file_hashes import record_task_files
from fedmodel.serve.model_card import remove_cut_cards

log = logging.getLogger(__name__)

NODE_WAIT_SECONDS = 60.0


def settings_from_run_config(run_config: dict[str, Any]) -> RunSettings:
    """Typed settings from a flat run-config.

    Under `flwr run` the run-config holds only the app's keys
    (`app_overrides`): `overrides` (Hydra syntax, applied to conf/) and
    `run-dir` ("" means outputs/<date>/<time>-flwr-<task>). The ServerApp runs
    in the SuperLink's working directory, so the run folder is made absolute
    here: the log names it and ClientApps find it from any working directory.
    `fedmodel simulate` passes the whole composed config instead, flattened;
    the budget rule fills its null keys here, as on every party.
    """
    overrides = app_overrides(run_config)
    if overrides is not None:
        refuse_run_folder_key(overrides, instead=FLWR_RUN_FOLDER)
        refuse_repeated_keys(overrides)
        raw = _composed(overrides, typed=str(run_config.get("overrides", "")))
        named = str(run_config.get("run-dir", ""))
        _say_relative_paths([*relative_paths(raw), ("run-dir", named)])
        run_dir = named or (
            f"outputs/{datetime.now():%Y-%m-%d/%H-%M-%S}-flwr-{raw['task']['name']}"
        )
        raw["run_dir"] = str(Path(run_dir).expanduser().resolve())
    else:
        raw = from_run_config(run_config)
    return settings_from_dict(raw)


def _composed(overrides: list[str], *, typed: str) -> dict[str, Any]:
    """`compose_config` of `flwr run`'s overrides, split from the string `typed`.

    `app_overrides` splits it as a shell splits words, which takes its quotes
    away: Hydra's quotes around a value holding spaces or commas are lost
    unless the override is itself quoted, and Hydra's refusal says nothing of
    it. Where `typed` held a quote and Hydra could not parse the words, the
    refusal says how to write them.
    """
    from hydra.errors import OverrideParseException

    try:
        return compose_config(overrides)
    except FedmodelError as exc:
        if isinstance(exc.__cause__, OverrideParseException) and (
            '"' in typed or "'" in typed
        ):
            raise FedmodelError(f"{exc}\n{SPLIT_QUOTES}") from exc
        raise


# The way out of a quote `flwr run`'s overrides lost; docs/deployment.md quotes it.
SPLIT_QUOTES = (
    "The run-config's overrides are split into words as a shell splits them, "
    "which takes away their quotes: put an override whose value Hydra must "
    "read quoted in double quotes, with a backslash before each of its own, "
    'e.g. overrides=\'task=files "task.labels=[\\"Neoplasms (C00-D49)\\",'
    '\\"Injury, poisoning (S00-T88)\\"]"\''
)


def _say_relative_paths(named: list[tuple[str, str]]) -> None:
    """Warn of each relative path `flwr run` gave: the SuperLink's folder takes it.

    The ServerApp runs in the SuperLink's working directory, on the server,
    while `flwr run` may be typed in another folder or on another machine, so
    `task.test_file=test.parquet` names a file where the SuperLink was
    started; each line says which, before a missing file is refused.
    """
    for key, path in named:
        if path and not Path(path).expanduser().is_absolute():
            log.warning(
                "%s %r is a relative path: the ServerApp takes it from the "
                "SuperLink's working directory %s, not from where `flwr run` was "
                "typed; give an absolute path to name another",
                key,
                path,
                Path.cwd(),
            )


def prepare_run_dir(settings: RunSettings) -> Path:
    """The run folder, made if missing, rid of the temp files a kill left."""
    run_dir = Path(settings.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(run_dir)
    return run_dir


def write_resolved_config(run_dir: Path, settings: RunSettings) -> None:
    """Write the run's settings, whole or not at all, once its start is loaded.

    So a resume refused for its checkpoint leaves the folder's config as it
    was. An earlier start's config that differs is copied to a numbered name
    first, so a kill at any point leaves a whole config in place. The hashes
    of the task files it names come before it (`record_task_files`): written
    after, a kill between left the earlier start's beside this config, which
    a resume then compared its paths with.
    """
    record_task_files(run_dir, settings)
    config = asdict(settings)
    path = run_dir / RESOLVED_CONFIG
    earlier = stored_config(run_dir)  # relative paths of an older run: absolute
    # `resume` is no change of settings: a resume sets it, as it must.
    changed = sorted(set(changed_keys(earlier, config)) - {"resume"}) if earlier else []
    if changed:
        kept = numbered_name(path)  # a copy: a kill leaves a config in place
        write_durably(kept, path.read_text(encoding="utf-8"))
        log.warning(
            "%s held the resolved config of an earlier start, which differs in "
            "%s: kept as %s",
            run_dir,
            ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else ""),
            kept.name,
        )
    write_durably(path, yaml.safe_dump(config, sort_keys=False))


def _remove_stale_temp_files(run_dir: Path) -> None:
    removed = [run_dir / CHECKPOINT_DIR] if remove_stale_checkpoint(run_dir) else []
    removed += remove_stale_temp_files(run_dir / CENTRAL_LEDGER_FILE)
    removed += remove_stale_temp_files(run_dir / RESOLVED_CONFIG)
    for name in START_RECORDS:
        removed += remove_stale_temp_files(run_dir / name)
    removed += remove_cut_cards(run_dir)
    clients = run_dir / CLIENTS_DIR
    if clients.is_dir():
        for state_dir in sorted(p for p in clients.iterdir() if p.is_dir()):
            removed += remove_stale_temp_files(state_dir / LEDGER_FILE)
    if removed:
        log.info(
            "removed %d temp %s an earlier stop left behind in %s",
            len(removed),
            plural(len(removed), "file"),
            run_dir,
        )


def check_federation(grid: Grid, settings: RunSettings) -> None:
    """In simulation every client is one node: the counts must agree.

    The simulation engine registers its nodes just after the ServerApp starts,
    so wait briefly for them. A deployment checks its deployment-only
    settings instead (`config/deployment.py`): its sites connect later.
    """
    if settings.federation.name != SIMULATION:
        check_deployment_settings(settings)
        return
    deadline = time.monotonic() + NODE_WAIT_SECONDS
    nodes = len(list(grid.get_node_ids()))
    while nodes < settings.num_clients and time.monotonic() < deadline:
        time.sleep(0.5)
        nodes = len(list(grid.get_node_ids()))
    if nodes != settings.num_clients:
        # Only `flwr run` can differ: `fedmodel simulate` starts num_clients.
        supernodes = f"{nodes} {plural(nodes, 'SuperNode')}"
        raise FedmodelError(
            f"the simulation has {supernodes} but num_clients is "
            f"{settings.num_clients}, one SuperNode per client: start `flwr run` "
            f'with --federation-config "num-supernodes={settings.num_clients}", '
            f"or add num_clients={nodes} to its run-config's overrides"
        )
