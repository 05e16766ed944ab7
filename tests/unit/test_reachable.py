"""`connect_within`: a host and port, looked up and connected to in time."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from fedmodel.run.reachable import connect_within

SCOPED = "fe80::1%eth0"
# eth0's interface index, which only the scoped name's lookup gives.
ETH0 = 2


class _Socket:
    """A socket that records the address it was asked to connect to."""

    connected: list[Any] = []

    def __init__(self, *args: Any) -> None:
        pass

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def settimeout(self, seconds: float | None) -> None:
        pass

    def connect(self, address: Any) -> None:
        self.connected.append(address)


def _getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
    """A resolver's answer: the scope id only where the name carries it."""
    scope = ETH0 if host == SCOPED else 0
    address = (host.split("%")[0], port, 0, scope)
    return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", address)]


def test_a_link_local_address_is_connected_to_with_its_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Host and port alone were looked up again, which lost eth0: the connect
    # went to scope 0, where a link-local address is not reached.
    monkeypatch.setattr(socket, "getaddrinfo", _getaddrinfo)
    monkeypatch.setattr(socket, "socket", _Socket)
    monkeypatch.setattr(_Socket, "connected", [])
    connect_within(SCOPED, 5000, seconds=5)
    assert _Socket.connected == [("fe80::1", 5000, 0, ETH0)]
