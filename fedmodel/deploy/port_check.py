"""A SuperLink's or SuperNode's port must be free before Flower starts.

Flower binds its HTTP APIs only after it has started, and a port another
process holds (a second SuperNode on the machine, an earlier SuperLink still
running) then ends in a traceback (`RuntimeError: SuperNode Runtime HTTP API
failed to start.`) or a uvicorn line that names neither the option nor the fix.
"""

from __future__ import annotations

import errno
import socket

from fedmodel.errors import FedmodelError

# TCP's port numbers; 0 would ask the system for any free one.
PORTS = range(1, 65536)
PORTS_TEXT = f"from {PORTS[0]} to {PORTS[-1]}"


def port_number(text: str) -> int | None:
    """`text` as a port number (`PORTS`), or None where it is not one."""
    return int(text) if text.isdecimal() and int(text) in PORTS else None


def check_port_free(host: str, port: int, *, option: str, fix: str) -> None:
    """Refuse when another process listens on `host:port`.

    Binds as uvicorn does (SO_REUSEADDR, so a port in TIME_WAIT passes) and
    lets go at once. Only a port in use is refused: any other failure (a host
    name that does not resolve here, a port below 1024 for a non-root user) is
    left to Flower, which reports it when it binds.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise FedmodelError(
                f"{option} {port}: another process already listens on "
                f"{host}:{port}; {fix}"
            ) from None
