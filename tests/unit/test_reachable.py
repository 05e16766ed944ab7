"""`reachable`: a host and port, looked up and connected to in time, or refused."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.run.reachable import connect_within, port_of, refuse_unless_connects
from tests.integration.loopback import free_port

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


@pytest.mark.parametrize("address", ["http://mlflow:99999", "ray://head:port"])
def test_a_port_that_is_not_one_is_refused_by_its_setting(address: str) -> None:
    with pytest.raises(FedmodelError, match=r"^tracking.uri='.*': Port .*1 to 65535"):
        port_of(urlsplit(address), setting=f"tracking.uri={address!r}")


def test_a_port_nothing_listens_at_is_refused_naming_the_setting() -> None:
    port = free_port()
    with pytest.raises(FedmodelError) as refused:
        refuse_unless_connects("127.0.0.1", port, setting="k=v", ways_out="start it")
    said = str(refused.value)
    assert said.startswith(f"k=v: nothing takes a connection at 127.0.0.1:{port} (")
    assert said.endswith("), start it")
