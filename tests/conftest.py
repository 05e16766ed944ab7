"""Shared fixtures: offline settings and shrunken configs on the tiny model."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "FLWR_TELEMETRY_ENABLED": "0",
}.items():
    os.environ.setdefault(_name, _value)

from flwr.app import Metadata  # noqa: E402

from fedmodel.config import (  # noqa: E402
    RunSettings,
    compose_config,
    settings_from_dict,
)
from fedmodel.privacy.ledger_record import LEDGER_FILE  # noqa: E402
from fedmodel.run.console import (  # noqa: E402
    CHATTY_LOGGERS,
    ROUTINE_LOGGERS,
    VERBOSE_ENV,
    close_log_file,
)
from fedmodel.run.layout import simulated_client_dir  # noqa: E402

# `make test` runs two xdist workers on two cores; each worker's torch would
# start a thread per core for what a test computes in its own process: four
# compute threads on two cores, several times slower. Each worker computes on
# its share of the cores instead. Four of the longest unit files
# (test_gpu_placement, test_rounds, test_local_round, test_distill) under
# `-n 2 --dist loadfile` took 181.8 s, and 49.5 s with one thread a worker.
# The same holds for the Ray actors and commands a test starts: Ray gives a
# client actor as many OpenMP threads as its num_cpus (2 under ONE_ACTOR) and a
# command takes one per core, unless OMP_NUM_THREADS says otherwise (a test
# that sets it for a process it starts still wins).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    import torch

    _THREADS = max(1, torch.get_num_threads() // _WORKERS)
    torch.set_num_threads(_THREADS)
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))

# Every run ends by timing its exported models (`latency.calls_batch1` calls
# at batch 1 and `calls_batch32` at 32, in each runtime; at the defaults 0-1 s
# of a tiny teacher-only run on a quiet 2-core machine, more under load or with
# a student's runtimes). No test reads a latency beyond its being measured (the
# timer itself is tested with a fake clock), so every run a test makes, in its
# own process or as a command, times 3 calls of each.
FEW_LATENCY_CALLS = ["latency.calls_batch1=3", "latency.calls_batch32=3"]

# One Ray actor per simulation (2 CPUs a client on this 2-core machine): the
# clients take turns in it, so the ClientApp's imports (torch, Opacus: about
# 10 s of CPU) are paid once a run instead of once per actor.
ONE_ACTOR = "federation.cpus_per_client=2"

# A run small enough for a test: tiny random BERT, a few hundred records, and
# one Ray actor (ONE_ACTOR).
SMALL_RUN = [
    "model=tiny",
    ONE_ACTOR,
    "task.max_train_examples=600",
    "task.max_test_examples=200",
    "num_clients=3",
    "num_rounds=2",
    "partition=iid",
    "finetune.batch_size=32",
    "finetune.local_epochs=2",
    "distill.epochs=1",
    "distill.student.num_layers=1",
    "distill.augment_copies=0",
    *FEW_LATENCY_CALLS,
]


def free_port() -> int:
    """A TCP port nobody listens on right now.

    A test that launches a Flower command names one, so a SuperLink or
    SuperNode the developer has running on the default ports does not decide it.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def small_run(*overrides: str) -> list[str]:
    """SMALL_RUN with extra overrides on top, as a command takes them: each key once.

    A command refuses a key given twice (`repeated_keys.py`), so SMALL_RUN's
    value of a key `overrides` set is left out.
    """
    keys = {o.partition("=")[0].lstrip("+~") for o in overrides}
    return [*(o for o in SMALL_RUN if o.partition("=")[0] not in keys), *overrides]


def small_config(*overrides: str) -> dict[str, Any]:
    """A composed config shrunk for tests, with extra overrides on top."""
    return compose_config(small_run(*overrides))


def client_ledger_path(run_dir: Path, client: int | str) -> Path:
    """Where simulated client `client` of the run in `run_dir` keeps its ledger."""
    return simulated_client_dir(run_dir, int(client)) / LEDGER_FILE


def client_ledger(run_dir: Path, client: int | str) -> dict[str, Any]:
    """That client's privacy ledger, as written."""
    return dict(json.loads(client_ledger_path(run_dir, client).read_text()))


def charged_plan() -> Any:
    """The privacy plan `charge_client_ledger` charges with."""
    from fedmodel.privacy.client_plan import PrivacyPlan

    return PrivacyPlan(
        target_epsilon=8.0,
        delta=1e-5,
        sample_rate=0.5,
        steps_per_round=2,
        planned_rounds=1,
        noise_multiplier=3.0,
        accountant="rdp",
    )


def charge_client_ledger(run_dir: Path, client: int, train: Any) -> Path:
    """Charge simulated client `client` one round for `train`'s records; its path.

    What a DP round leaves in the run folder: the ledger carries the records'
    fingerprint.
    """
    from fedmodel.privacy.ledger import PrivacyLedger
    from fedmodel.training.fingerprint import data_fingerprint

    plan = charged_plan()
    path = client_ledger_path(run_dir, client)
    ledger = PrivacyLedger.open(
        path, client_id=str(client), plan=plan, data_fingerprint=data_fingerprint(train)
    )
    ledger.charge(round_number=1, steps=plan.steps_per_round)
    return path


def small_settings(*overrides: str) -> RunSettings:
    """Typed settings of `small_config(*overrides)`."""
    return settings_from_dict(small_config(*overrides))


@functools.lru_cache(maxsize=64)
def _composed(*overrides: str) -> RunSettings:
    return settings_from_dict(compose_config(list(overrides)))


def group_settings(group: str, option: str | None = None, **values: Any) -> Any:
    """One config group's typed settings, composed from the packaged YAML.

    `option` picks the group's option (`group=option`); `values` then replace
    single fields, so a test states only what it changes.
    """
    overrides = () if option is None else (f"{group}={option}",)
    # No group's settings depend on the client count, which task=files would
    # otherwise take from files these settings do not list.
    settings = _composed(*overrides, "num_clients=1")
    return dataclasses.replace(getattr(settings, group), **values)


@pytest.fixture
def small_run_config() -> dict[str, Any]:
    """The default shrunken config (DP on, head fine-tuning)."""
    return small_config()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTTP(S) proxy set: a start connects to an http(s) tracking.uri itself."""
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


ENVIRONMENT = (
    VERBOSE_ENV,
    "HF_DATASETS_DISABLE_PROGRESS_BARS",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HYDRA_FULL_ERROR",
)


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what `setup_logging` (and `fedmodel simulate`) change in the process.

    For every test: a test that runs a simulation, a ClientApp or a command
    in-process leaves fedmodel's logger unpropagated (no `caplog` records
    after it) and may set FEDMODEL_VERBOSE for the subprocesses of every
    later test; the outcome of a test must not depend on which ran before it.
    """
    for name in ENVIRONMENT:
        # Set, then deleted: monkeypatch then removes at teardown what the
        # test sets (`delenv` of an unset variable alone records nothing).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with logging_restored():
        yield


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Put fedmodel's and the libraries' loggers back as they were.

    For module fixtures that run a round loop (the ClientApp calls
    `setup_logging`), which the per-test fixture above does not cover.
    """
    names = ("fedmodel", *CHATTY_LOGGERS, *ROUTINE_LOGGERS)
    loggers = [logging.getLogger(n) for n in names]
    saved = [
        (lg, lg.propagate, lg.level, [(h, list(h.filters)) for h in lg.handlers])
        for lg in loggers
    ]
    root_level = logging.getLogger().level
    try:
        yield
    finally:
        close_log_file()
        logging.getLogger().setLevel(root_level)
        for logger, propagate, level, handlers in saved:
            logger.propagate = propagate
            logger.setLevel(level)
            for handler, filters in handlers:
                handler.filters = filters


# The longest test files, longest first (`--durations` of a `make test` run).
# `make test` runs two workers, a file each, in this order (xdist's
# --no-loadscope-reorder; by default it would order files by test count);
# started first, these run side by side instead of one ending the run alone.
LONGEST_FILES = (
    "test_dropouts.py",
    "test_simulation.py",
    "test_deployment.py",
    "test_simulate_cli.py",
    "test_interrupt.py",
    "test_audit.py",
    "test_flwr_run.py",
    "test_ray_cluster.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest files' tests first, keeping every other order."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return (
            LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)
        )

    items.sort(key=rank)


def reply_metadata(node: int) -> Metadata:
    """The metadata of a train reply from `node` to the server."""
    return Metadata(
        run_id=1,
        message_id=f"m-{node}",
        src_node_id=node,
        dst_node_id=0,
        reply_to_message_id="t",
        group_id="1",
        created_at=time.time(),
        ttl=60.0,
        message_type="train",
    )
