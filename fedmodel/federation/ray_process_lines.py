"""Ray's raylet and GCS server lines go to the run's log, not to the console.

Ray's driver prints the lines its log monitor forwards from the session's log
files: each client actor's own output (`(ClientAppActor pid=...)` in front:
fedmodel's client warnings among them) and the errors of Ray's own C++
processes. Those read `(raylet) [2026-12-06 11:36:30,711 E 17512 17536]
(raylet) agent_manager.cc:87: The raylet exited immediately because one Ray
agent failed ...` (five lines) or `(pid=gcs_server) [...] (gcs_server)
gcs_actor_scheduler.cc:499: Failed to kill actor NIL_ID ...`: Ray's chatter,
which the `ray` logger writes to fedmodel.log instead (to the console too
when verbose). Ray has no setting for this: `log_to_driver=False` would hide
the clients' lines as well, so its printer is wrapped (`ray._private`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ray._private.ray_logging import global_worker_stdstream_dispatcher

# The processes whose `.err` files Ray's log monitor forwards as their own.
RAY_PROCESSES = ("raylet", "gcs_server")
# The name `ray.init` gives its printer (`ray.shutdown` removes it by it).
RAY_PRINTER = "ray_print_logs"

ray_log = logging.getLogger("ray")


def route_ray_process_lines() -> None:
    """Log the raylet's and GCS server's lines Ray would print; once Ray started.

    Ray's printer goes on printing every other line, as before.
    """
    dispatcher = global_worker_stdstream_dispatcher
    printers = [pair for pair in dispatcher.handlers if pair[0] == RAY_PRINTER]
    if not printers or isinstance(printers[0][1], _RoutedPrinter):
        return  # Ray prints no line (log_to_driver off), or routed already
    dispatcher.remove_handler(RAY_PRINTER)
    dispatcher.add_handler(RAY_PRINTER, _RoutedPrinter(printers[0][1]))


class _RoutedPrinter:
    """Ray's printer for every line but its own processes', which it logs."""

    def __init__(self, printer: Callable[[dict[str, Any]], None]) -> None:
        self.printer = printer

    def __call__(self, data: dict[str, Any]) -> None:
        process = data.get("pid")
        if process not in RAY_PROCESSES:
            self.printer(data)
            return
        for line in data.get("lines", []):
            ray_log.warning("(%s) %s", process, line)
