"""Ray's raylet and GCS server lines reach the run's log, its clients' the console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from ray._private.ray_logging import global_worker_stdstream_dispatcher

from fedmodel.federation.ray_process_lines import RAY_PRINTER, route_ray_process_lines

RAYLET_LINE = (
    "[2026-12-06 11:36:30,711 E 17512 17536] (raylet) agent_manager.cc:87: The "
    "raylet exited immediately because one Ray agent failed"
)


@pytest.fixture
def printed() -> Iterator[list[dict[str, Any]]]:
    """What Ray's printer, as `ray.init` registers it, was given to print."""
    seen: list[dict[str, Any]] = []
    global_worker_stdstream_dispatcher.add_handler(RAY_PRINTER, seen.append)
    try:
        yield seen
    finally:
        global_worker_stdstream_dispatcher.remove_handler(RAY_PRINTER)


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_ray_processes_lines_are_logged_and_a_clients_printed(
    printed: list[dict[str, Any]],
) -> None:
    # They reached the console as `(raylet) [2026-...] ...` during a run.
    route_ray_process_lines()
    route_ray_process_lines()  # once: a second start wraps nothing again
    client = {"pid": 4242, "actor_name": "ClientAppActor", "lines": ["a warning"]}
    kept = _Kept()
    logging.getLogger("ray").addHandler(kept)
    try:
        for data in (
            {"pid": "raylet", "lines": [RAYLET_LINE]},
            {"pid": "gcs_server", "lines": ["[2026-12-06 ...] (gcs_server) x"]},
            client,
        ):
            global_worker_stdstream_dispatcher.emit(data)
    finally:
        logging.getLogger("ray").removeHandler(kept)
    assert printed == [client]
    assert [(r.name, r.getMessage()) for r in kept.records] == [
        ("ray", f"(raylet) {RAYLET_LINE}"),
        ("ray", "(gcs_server) [2026-12-06 ...] (gcs_server) x"),
    ]
