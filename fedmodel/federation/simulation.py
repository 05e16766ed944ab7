"""Run the ServerApp and ClientApps on Flower's simulation engine (Ray backend)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Ray reads this once, when it is imported. By default it folds lines that
# differ only in their numbers into one "[repeated 2x across cluster]" line:
# client 1's warning hidden behind client 0's. Each client's line is kept.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Ray colours the "(ClientAppActor pid=...)" before a client's line whatever
# the console is: redirected (a scheduler's log, `> run.log`), the file held
# escape codes. Ray reads this as it prints each line.
if not (sys.stdout.isatty() and sys.stderr.isatty()):
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")

# Ray's driver sets up a crash handler of its own below Python that also
# takes SIGTERM, and sets SIGTERM back to the default as Ray shuts down: a
# SIGTERM while Ray started aborted the command (exit 134), and a second one
# while it stopped ended it with no line and Ray's workers left running
# (`cli/interrupted.py`). Ray reads this as it is imported; its workers, which
# start from this environment, keep their crash handler.
_RAY_CRASH_HANDLER_OFF = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
_crash_handler_chosen = _RAY_CRASH_HANDLER_OFF in os.environ
os.environ.setdefault(_RAY_CRASH_HANDLER_OFF, "1")

import ray  # noqa: E402

if not _crash_handler_chosen:
    del os.environ[_RAY_CRASH_HANDLER_OFF]

from flwr.app import Context, RecordDict  # noqa: E402
from flwr.simulation.run_simulation import _run_simulation  # noqa: E402
from flwr.supercore.telemetry import EventType  # noqa: E402

from fedmodel.client.record_check import check_simulated_clients  # noqa: E402
from fedmodel.config import (  # noqa: E402
    FederationSettings,
    RunSettings,
    settings_from_dict,
    to_run_config,
)
from fedmodel.config.unread_keys import unread_key_warnings  # noqa: E402
from fedmodel.config.wording import plural  # noqa: E402
from fedmodel.errors import FedmodelError  # noqa: E402
from fedmodel.federation import client_app, ray_worker, server_app  # noqa: E402
from fedmodel.federation.leftovers import stop_leftover_processes  # noqa: E402
from fedmodel.federation.ray_process_lines import route_ray_process_lines  # noqa: E402
from fedmodel.run.console import setup_logging  # noqa: E402
from fedmodel.run.folder_check import check_run_folder  # noqa: E402
from fedmodel.run.layout import FLWR_HOME_DIR, SUMMARY_FILE  # noqa: E402
from fedmodel.run.reachable import port_of, refuse_unless_connects  # noqa: E402

log = logging.getLogger(__name__)


def ray_backend_config(federation: FederationSettings) -> dict[str, Any]:
    """Flower's Ray backend settings: each client's resources, Ray's init args.

    `ray_address` joins an existing Ray cluster (Flower hands `init_args` to
    `ray.init`). Without it Ray starts on this machine for the run: asked for
    no address in particular, `ray.init` would join the cluster named by
    `RAY_ADDRESS` or by the last `ray start` on this machine, and run the
    clients, records and all, wherever that is.
    """
    return {
        "client_resources": {
            "num_cpus": federation.cpus_per_client,
            "num_gpus": federation.gpus_per_client,
        },
        "init_args": {
            "include_dashboard": False,
            "address": federation.ray_address or "local",
        },
    }


def simulate(
    raw_config: dict[str, Any], *, run_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Run one federated simulation and return its summary.

    `raw_config` is a composed config (nested, snake_case) as Hydra gives it,
    from `overrides` (a preset's values among them are not the user's);
    outputs go to `run_dir`.
    """
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {**raw_config, "run_dir": str(run_dir)}
    settings = settings_from_dict(config)
    check_run_folder(run_dir, settings)  # before any Flower start-up
    check_simulated_clients(settings)
    for line in unread_key_warnings(settings, overrides=overrides):
        log.warning("%s", line)
    # Keep Flower's own files (config, logs) inside the run folder.
    os.environ["FLWR_HOME"] = str(run_dir / FLWR_HOME_DIR)
    # Ray would otherwise warn on every start that it hides GPUs from clients.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    context = Context(
        run_id=secrets.randbits(63),
        node_id=0,
        node_config={},
        state=RecordDict(),
        run_config=to_run_config(config),
    )
    with stop_leftover_processes():
        _run_simulation_engine(settings, context)
    summary_path = run_dir / SUMMARY_FILE
    if not summary_path.is_file():
        raise FedmodelError(
            f"the simulation ended without writing {summary_path}; see the log above"
        )
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    return summary


# How `ray.init` fails when Ray's raylet gave up on its own agents, which it
# gives 15 s to start: on a busy machine they can take longer
# (ray-project/ray#65983). A second start usually gets through.
_RAY_START_TIMEOUT = "timed out during startup"
RAY_START_ATTEMPTS = 3
# Addresses ray.init looks up itself, with no host to ask.
RAY_LOOKED_UP_ADDRESSES = ("auto", "local")
# What each Ray worker runs as it starts, named for Ray to import there.
WORKER_SETUP_HOOK = f"{ray_worker.__name__}.{ray_worker.set_up_logging.__name__}"


def start_ray(federation: FederationSettings) -> None:
    """Start Ray for the run (or join `federation.ray_address`) before Flower.

    Flower's Ray backend starts Ray only if none is running, so it runs the
    clients on this one and shuts it down at the end. Starting it here lets a
    start that timed out be tried again, up to `RAY_START_ATTEMPTS` times. The
    clients' processes get this process's `sys.path`, as Flower would give them,
    and set up fedmodel's logging as they start: Flower's lines in a client
    actor stay off the console from the first, also in an actor that is ended
    before it is given a message ("Manually terminating ClientAppActor", when
    a resumed run has no round left to train). The raylet's and GCS server's
    lines go to the run's log (`ray_process_lines.py`).
    A Ray this process started already is used as it is, as Flower would.
    The process's SIGTERM handling is left as it was (`_sigterm_handling_kept`).
    """
    if ray.is_initialized():
        return
    check_ray_address_reachable(federation.ray_address)
    init_args = ray_backend_config(federation)["init_args"]
    runtime_env = {
        "env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)},
        "worker_process_setup_hook": WORKER_SETUP_HOOK,
    }
    for attempt in range(1, RAY_START_ATTEMPTS + 1):
        try:
            with _sigterm_handling_kept():
                ray.init(runtime_env=runtime_env, **init_args)
            route_ray_process_lines()
            return
        except Exception as exc:  # Ray raises a bare Exception on a timeout
            if _RAY_START_TIMEOUT not in str(exc) or attempt == RAY_START_ATTEMPTS:
                message = _ray_start_failure(federation, exc, attempt)
                raise FedmodelError(message) from exc
            log.warning(
                "Ray did not start (attempt %d of %d: its processes timed out on "
                "this busy machine); starting it again",
                attempt,
                RAY_START_ATTEMPTS,
            )
            ray.shutdown()


def check_ray_address_reachable(address: str | None) -> None:
    """Refuse a `federation.ray_address` whose host and port take no connection.

    ray.init retries an address nothing answers at without end, deaf to
    SIGTERM (still at it after 3.5 min for 127.0.0.1:1), so the run hung
    before round 1. An address without a port is left to `ray.init`, as are
    `auto` and `local`.
    """
    if not address or address in RAY_LOOKED_UP_ADDRESSES:
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    setting = f"federation.ray_address={address!r}"
    port = port_of(parts, setting=setting)
    if not parts.hostname or port is None:
        return
    refuse_unless_connects(
        parts.hostname,
        port,
        setting=setting,
        ways_out="and ray.init would retry it without end: start the cluster "
        "there (`ray start --head`), give the address its head printed "
        "(host:6379, or ray://host:10001), or set federation.ray_address=null "
        "to run on a Ray of the run's own",
    )


@contextlib.contextmanager
def _sigterm_handling_kept() -> Iterator[None]:
    """Put back the SIGTERM handler `ray.init` replaces with Ray's own.

    With Ray's, the driver exits at SIGTERM before the command can stop the
    server, shut Ray down and say how to continue the run
    (`cli/interrupted.py`). A SIGTERM that Ray's handler took while Ray
    started (it exits 15) goes to the handler before it. Python sets a
    handler only from the main thread.
    """
    before = signal.getsignal(signal.SIGTERM)
    taken = None
    try:
        yield
    except SystemExit as exc:
        if exc.code != signal.SIGTERM or not callable(before):
            raise
        taken = exc
    finally:
        main = threading.current_thread() is threading.main_thread()
        if main and before is not None:  # None: one set outside Python
            signal.signal(signal.SIGTERM, before)
    if taken is not None and callable(before):
        before(signal.SIGTERM, None)
        raise taken


def _ray_start_failure(
    federation: FederationSettings, exc: Exception, attempts: int
) -> str:
    if federation.ray_address:
        return (
            f"could not join the Ray cluster at federation.ray_address="
            f"{federation.ray_address!r}: {exc}"
        )
    return (
        f"Ray did not start on this machine ({attempts} "
        f"{plural(attempts, 'attempt')}): {exc} If the "
        "machine is busy, run the simulation when fewer jobs share it; Ray's own "
        "logs are under /tmp/ray/session_latest/logs"
    )


def _run_simulation_engine(settings: RunSettings, context: Context) -> None:
    # Ray's logger got its console handler on `import ray`, after the command
    # set up logging: filter it like the other libraries' before Ray starts.
    setup_logging()
    start_ray(settings.federation)
    try:
        _run_simulation(
            num_supernodes=settings.num_clients,
            exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
            client_app=client_app.app,
            server_app=server_app.app,
            backend_name="ray",
            backend_config=ray_backend_config(settings.federation),
            server_app_context=context,
        )
    finally:
        # Flower's backend shuts Ray down when it ends; not if the run failed
        # before the backend was built, and the next run would find it.
        ray.shutdown()
