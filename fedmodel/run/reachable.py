"""Whether a host and port take a TCP connection, name lookup included, in time.

A start asks this of a server the run will need later (an MLflow tracker, a
Ray cluster) whose client would otherwise retry for minutes, or without end.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Any
from urllib.parse import SplitResult

from fedmodel.errors import FedmodelError

# Seconds a start waits for a server it will need (the tracker, a Ray
# cluster) to take a connection, name lookup included.
START_CONNECT_SECONDS = 3.0


def port_of(parts: SplitResult, *, setting: str) -> int | None:
    """The port `parts` names, if any; refused by `setting` where it is not a port."""
    try:
        return parts.port
    except ValueError as exc:  # a port out of range, or no number
        raise FedmodelError(
            f"{setting}: {exc}; give the server's port as a number from 1 to 65535"
        ) from exc


def refuse_unless_connects(
    host: str, port: int, *, setting: str, ways_out: str
) -> None:
    """Refuse, by `setting`, a `host`:`port` that takes no connection in time.

    `ways_out`: why the run cannot go on without it, and what the user can do.
    """
    try:
        connect_within(host, port, seconds=START_CONNECT_SECONDS)
    except OSError as exc:
        raise FedmodelError(
            f"{setting}: nothing takes a connection at {host}:{port} ({exc}), "
            f"{ways_out}"
        ) from exc


def connect_within(host: str, port: int, *, seconds: float) -> None:
    """Connect to `host`:`port`, name lookup and all, or raise OSError in `seconds`.

    `socket.create_connection`'s timeout bounds each connect, not the lookup:
    a resolver that does not answer held the start for as long as it hung.
    Every address is tried (`localhost`: ::1, then 127.0.0.1), in what is left.
    """
    deadline = time.monotonic() + seconds
    error: OSError = TimeoutError(f"{host} has no address")
    for family, kind, proto, _, address in _addresses(host, port, seconds=seconds):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no connection within {seconds:g} s")
        try:
            # The whole address: host and port alone lose a link-local IPv6
            # address's scope (fe80::1%eth0), which a second lookup drops.
            with socket.socket(family, kind, proto) as connection:
                connection.settimeout(left)
                connection.connect(address)
                return
        except OSError as exc:
            error = exc
    raise error


def _addresses(host: str, port: int, *, seconds: float) -> list[Any]:
    """`host`'s addresses for a TCP connection; TimeoutError after `seconds`.

    Looked up in a daemon thread, which a hung resolver may keep: the command
    does not wait for it to exit.
    """
    found: queue.Queue[list[Any] | OSError] = queue.Queue(maxsize=1)

    def look_up() -> None:
        try:
            found.put(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.put(exc)

    threading.Thread(target=look_up, name="address-lookup", daemon=True).start()
    try:
        addresses = found.get(timeout=seconds)
    except queue.Empty:
        raise TimeoutError(f"looking up {host} took over {seconds:g} s") from None
    if isinstance(addresses, OSError):
        raise addresses
    return addresses
