"""`fedmodel supernode` checks the SuperLink's certificate before Flower starts.

A real TLS server on loopback presents a certificate from `fedmodel certs
superlink`; the SuperNode's launch dials it with the right CA, another CA,
and a host name the certificate was not made for.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedmodel.client.site import SiteConfig
from fedmodel.deploy.certs import create_superlink_certificates
from fedmodel.deploy.launch import supernode_command
from fedmodel.deploy.site_keys import create_site_keys
from fedmodel.deploy.superlink_reissue import reissue_superlink_certificate
from fedmodel.errors import FedmodelError
from tests.unit.dated_certs import sign_with_dates


@pytest.fixture
def tls_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A TLS server on 127.0.0.1 with a SuperLink certificate for localhost only."""
    # Not the loopback addresses `fedmodel certs superlink` adds for the
    # SuperLink's own SuperExec: 127.0.0.1 stays a name it was not made for.
    monkeypatch.setattr("fedmodel.deploy.certs.LOOPBACK_HOSTS", ())
    certs = create_superlink_certificates(tmp_path / "link", hosts=["localhost"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(5)
            # Read for each connection, as a SuperLink started again reads it.
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certs.cert, certs.key)
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()
    thread.join(timeout=5)


@pytest.fixture
def site(tmp_path: Path) -> SiteConfig:
    data = tmp_path / "notes.csv"
    data.write_text("text,label\nhello,a\nworld,b\n")
    return SiteConfig(
        site_id=0, data_file=data, state_dir=tmp_path / "state", max_epsilon=3.0
    )


def _launch(site: SiteConfig, superlink: str, ca_cert: Path, tmp: Path) -> list[str]:
    keys = create_site_keys(tmp / "keys", name="site-0")
    return supernode_command(
        site,
        superlink=superlink,
        ca_cert=ca_cert,
        private_key=keys.private_key,
        runtime_port=1,
    )


def test_the_servers_ca_passes(tmp_path: Path, tls_port: int, site: SiteConfig) -> None:
    command = _launch(site, f"localhost:{tls_port}", tmp_path / "link/ca.crt", tmp_path)
    assert command[0] == "flower-supernode"


def test_another_ca_stops_the_launch_naming_the_option(
    tmp_path: Path, tls_port: int, site: SiteConfig
) -> None:
    other = create_superlink_certificates(tmp_path / "other", hosts=["localhost"])
    with pytest.raises(FedmodelError, match=r"^--ca-cert .* does not verify") as error:
        _launch(site, f"localhost:{tls_port}", other.ca_cert, tmp_path)
    assert "\n" not in str(error.value)


def test_a_host_the_certificate_does_not_name_stops_the_launch(
    tmp_path: Path, tls_port: int, site: SiteConfig
) -> None:
    with pytest.raises(FedmodelError, match="not made for 127.0.0.1") as error:
        _launch(site, f"127.0.0.1:{tls_port}", tmp_path / "link/ca.crt", tmp_path)
    # The name is added by re-issuing the certificate from the same CA, so the
    # site's ca.crt stays (before, a new CA in a new folder: a new ca.crt).
    assert str(error.value).endswith(
        "have the server operator re-issue the SuperLink's certificate to name it "
        "(`fedmodel certs superlink --dir DIR --reissue --host 127.0.0.1` and a "
        "--host for each name sites dial; signed by the same CA, so this site "
        "keeps its --ca-cert)"
    )


def test_a_host_added_by_reissuing_the_certificate_passes_with_the_same_ca(
    tmp_path: Path, tls_port: int, site: SiteConfig
) -> None:
    # Before, a host was added only by a new CA, whose ca.crt every site needed.
    ca_cert = tmp_path / "link/ca.crt"
    held = ca_cert.read_bytes()
    with pytest.raises(FedmodelError, match="not made for 127.0.0.1"):
        _launch(site, f"127.0.0.1:{tls_port}", ca_cert, tmp_path / "a")
    reissue_superlink_certificate(tmp_path / "link", hosts=["localhost", "127.0.0.1"])
    command = _launch(site, f"127.0.0.1:{tls_port}", ca_cert, tmp_path / "b")
    assert command[0] == "flower-supernode" and ca_cert.read_bytes() == held
    # The host it held before still passes.
    assert _launch(site, f"localhost:{tls_port}", ca_cert, tmp_path / "c")


def test_a_superlink_not_up_yet_is_left_to_flower(
    tmp_path: Path, site: SiteConfig, caplog: pytest.LogCaptureFixture
) -> None:
    create_superlink_certificates(tmp_path / "link", hosts=["localhost"])
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    command = _launch(site, f"127.0.0.1:{port}", tmp_path / "link/ca.crt", tmp_path)
    assert command[0] == "flower-supernode"
    # A warning, which the console shows (an info line was never printed):
    # it names the address an operator may have mistyped.
    (warning,) = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "--superlink" in r.getMessage()
    ]
    assert f"--superlink 127.0.0.1:{port}: no SuperLink answers" in warning
    assert "check the host and port" in warning


def test_an_expired_superlink_certificate_is_the_server_operators_to_reissue(
    tmp_path: Path, tls_port: int, site: SiteConfig
) -> None:
    # Before, the site was told to get another ca.crt: its own was right.
    sign_with_dates(tmp_path / "link/superlink.crt", days_from_now=(-400, -1))
    with pytest.raises(FedmodelError) as refused:
        _launch(site, f"localhost:{tls_port}", tmp_path / "link/ca.crt", tmp_path)
    assert str(refused.value).startswith(
        f"--superlink localhost:{tls_port}: the SuperLink's certificate has expired "
        "(certificate has expired): the server operator re-issues it (`fedmodel "
        "certs superlink --dir DIR --reissue --host localhost`"
    )


def test_an_expired_ca_cert_stops_the_supernode_launch(
    tmp_path: Path, site: SiteConfig
) -> None:
    create_superlink_certificates(tmp_path / "link", hosts=["localhost"])
    ca_cert = tmp_path / "link/ca.crt"
    sign_with_dates(ca_cert, days_from_now=(-400, -1))
    with pytest.raises(FedmodelError) as refused:
        _launch(site, "localhost:1", ca_cert, tmp_path)
    assert str(refused.value).startswith(f"--ca-cert: {ca_cert} expired on ")
    assert str(refused.value).endswith(
        "it verifies no SuperLink: ask the server operator for the ca.crt of the "
        "CA their SuperLink runs with now"
    )
