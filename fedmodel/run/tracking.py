"""Optional experiment tracking (`tracking=mlflow`) of a finished run folder.

The run folder stays the record; MLflow gets a copy to compare runs in its UI:
the flat config as parameters, each round's metrics by round, the final and
privacy figures, and the folder's small files as artifacts (not the model
weights, whose path is a tag). MLflow is imported only when asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from fedmodel.config import RunSettings
from fedmodel.config.flat_keys import dotted
from fedmodel.errors import FedmodelError
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE, LEDGER_FILE
from fedmodel.run.layout import (
    AUDIT_FILE,
    CLIENTS_DIR,
    METRICS_FILE,
    PLOT_FILE,
    RESOLVED_CONFIG,
    SUMMARY_FILE,
)
from fedmodel.run.metrics import read_rounds, write_json
from fedmodel.run.reachable import port_of, refuse_unless_connects
from fedmodel.run.run_files import parsed_file
from fedmodel.run.summary import STATUS_FAILED, charged_epsilon

log = logging.getLogger(__name__)

ARTIFACT_GLOBS = (
    SUMMARY_FILE,
    METRICS_FILE,
    PLOT_FILE,
    RESOLVED_CONFIG,
    AUDIT_FILE,
    CENTRAL_LEDGER_FILE,
    f"{CLIENTS_DIR}/*/{LEDGER_FILE}",
)
# summary.json's key for the tracker's id of the run (`track_run`).
TRACKED_KEY = "tracked_run_id"
# MLflow takes at most 100 parameters per call.
PARAMS_PER_CALL = 100
HTTP_PORTS = {"http": 80, "https": 443}


def default_uri() -> str:
    """A local file store, ./mlruns."""
    return (Path.cwd() / "mlruns").resolve().as_uri()


def track_run(settings: RunSettings, run_dir: Path) -> str | None:
    """Log a run that wrote its summary to the configured tracker; its run id.

    A run whose summary says it failed is logged too, marked failed. The id
    goes into summary.json (TRACKED_KEY) once the tracker has the run.
    """
    run_id = TRACKERS[settings.tracking.name](settings, run_dir)
    if run_id is not None:
        write_json(
            run_dir / SUMMARY_FILE, {**_read_summary(run_dir), TRACKED_KEY: run_id}
        )
    return run_id


def track_if_untracked(
    settings: RunSettings, run_dir: Path, summary: Mapping[str, Any]
) -> None:
    """Log a finished run whose summary holds no tracker's run id.

    The ServerApp tracks a run after its summary says it finished, so a stop
    in between left a finished run that no command tracked: `fedmodel resume`
    (and a resumed sweep) finds it finished and tracks it then.
    """
    if TRACKED_KEY not in summary:
        check_tracker_reachable(settings)  # else minutes of MLflow's retries
        track_run(settings, run_dir)


def _no_tracker(settings: RunSettings, run_dir: Path) -> str | None:
    """`tracking=none`: the run folder is the only record."""
    return None


def _track_mlflow(settings: RunSettings, run_dir: Path) -> str | None:
    """`tracking=mlflow`: copy the run into an MLflow experiment."""
    tracking = settings.tracking
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking.uri or default_uri()
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps its file store only on request ("maintenance mode").
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    summary = _read_summary(run_dir)
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(tracking.experiment)
        with mlflow.start_run(run_name=run_dir.name) as run:
            _log_run(mlflow, settings, run_dir, summary)
            if summary.get("status") == STATUS_FAILED:
                mlflow.end_run(status="FAILED")
    except (MlflowException, OSError) as exc:  # a store it cannot reach or write
        raise FedmodelError(
            f"MLflow could not log {run_dir} to {uri} ({exc}); the run folder is "
            "complete: set tracking.uri to a store MLflow can reach and write, or "
            f"tracking=none to leave it untracked (`fedmodel resume {run_dir} "
            "tracking=none` once it has finished)"
        ) from exc
    log.info("logged to MLflow at %s (run %s)", uri, run.info.run_id)
    return str(run.info.run_id)


# `tracking.name` -> what logs a finished run (names: fedmodel.config.modes).
TRACKERS: dict[str, Callable[[RunSettings, Path], str | None]] = {
    "none": _no_tracker,
    "mlflow": _track_mlflow,
}


def check_tracker_reachable(settings: RunSettings) -> None:
    """Refuse, before the run starts, a tracker that takes no connection.

    The tracker is asked only once the run has finished, and MLflow retries an
    http(s) server that does not answer for minutes before it gives up. So is
    a resume that only tracks a finished run (`track_if_untracked`).
    """
    START_CHECKS[settings.tracking.name](settings)


def _no_tracker_to_reach(settings: RunSettings) -> None:
    """`tracking=none`: its `tracking.uri`, kept from a tracked start, is unread."""


def _mlflow_server_connects(settings: RunSettings) -> None:
    """An http(s) `tracking.uri` takes a TCP connection at its host and port.

    Not asked where a proxy carries the requests (HTTP(S)_PROXY, as MLflow's
    requests read it): that proxy, not this machine, reaches the server.
    """
    uri = settings.tracking.uri or ""
    parts = urlsplit(uri)
    host = parts.hostname
    if parts.scheme not in HTTP_PORTS or not host:
        return
    if getproxies().get(parts.scheme) and not proxy_bypass(host):
        return
    setting = f"tracking.uri={uri!r}"
    port = port_of(parts, setting=setting) or HTTP_PORTS[parts.scheme]
    refuse_unless_connects(
        host,
        port,
        setting=setting,
        ways_out="and MLflow would retry it for minutes (a run asks it only "
        "once it has finished): start the MLflow server there, set "
        "tracking.uri to a file store (file:///PATH, or null for ./mlruns), "
        "or tracking=none to leave the run untracked",
    )


# `tracking.name` -> what a start checks before the run (`check_tracker_reachable`).
START_CHECKS: dict[str, Callable[[RunSettings], None]] = {
    "none": _no_tracker_to_reach,
    "mlflow": _mlflow_server_connects,
}


def _log_run(
    mlflow: Any, settings: RunSettings, run_dir: Path, summary: dict[str, Any]
) -> None:
    params = {
        key: str(value)[:500]
        for key, value in dotted(asdict(settings)).items()
        if key != "run_dir"
    }
    items = sorted(params.items())
    for start in range(0, len(items), PARAMS_PER_CALL):
        mlflow.log_params(dict(items[start : start + PARAMS_PER_CALL]))
    for record in read_rounds(run_dir):
        mlflow.log_metrics(_numbers(record, skip={"round"}), step=int(record["round"]))
    final = _numbers(summary, skip=set())
    guarantee = summary.get("privacy_guarantee") or {}
    final.update(
        {
            f"privacy_{key}": value
            for key, value in _numbers(guarantee, skip=set()).items()
        }
    )
    for client in summary.get("clients", []):
        figures = _numbers(client, skip=set())
        charged = charged_epsilon(figures)  # as the guarantee takes it
        if charged is not None:
            figures["epsilon"] = charged
        for key in ("epsilon", "noise_multiplier", "steps"):
            if key in figures:
                final[f"client_{client['client_id']}_{key}"] = figures[key]
    mlflow.log_metrics(final)
    mlflow.set_tags(
        {
            "task": settings.task.name,
            "privacy": settings.privacy.mode,
            "privacy_level": str(guarantee.get("level")),
            "status": str(summary.get("status")),
            "run_dir": str(run_dir),
            "model_dir": str(summary.get("model_dir", "")),
        }
    )
    for pattern in ARTIFACT_GLOBS:
        for path in sorted(run_dir.glob(pattern)):
            folder = str(path.parent.relative_to(run_dir))
            mlflow.log_artifact(
                str(path), artifact_path=None if folder == "." else folder
            )


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        raise FedmodelError(f"{run_dir} has no {SUMMARY_FILE}: nothing to track")
    summary: dict[str, Any] = parsed_file(
        path, fix="restore it: tracking reads the run's results from it"
    )
    return summary


def _numbers(record: dict[str, Any], *, skip: set[str]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in record.items()
        if key not in skip
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }
