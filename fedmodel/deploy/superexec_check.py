"""A SuperLink's launch check that its certificate names what its SuperExec dials.

Flower 1.41's SuperLink starts a SuperExec of its own, which dials the
SuperLink's --host over TLS, a bind-all host as its loopback address (flwr's
`resolve_bind_address`). A certificate that does not name that address fails
every handshake: the SuperLink runs, and the SuperExec that would start a
run's ServerApp retries in vain. `fedmodel superlink` refuses such a
certificate before Flower starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from fedmodel.errors import FedmodelError


def certificate_names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether `cert` names `host` (an IP address or a DNS name).

    An IP address must be one of its IP subject alternative names, as TLS
    clients check it; a DNS name one of its DNS names, case-insensitively, or
    match a `*.` wildcard in its first label.
    """
    try:
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return address in names.get_values_for_type(x509.IPAddress)
    wanted = host.lower().rstrip(".")
    for name in names.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted:
            if wanted.split(".", 1)[1] == name[2:]:
                return True
    return False


def superexec_host(host: str) -> str:
    """The address the SuperLink's own SuperExec dials for a SuperLink on `host`.

    As flwr 1.41's resolve_bind_address: a bind-all host becomes loopback.
    """
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host)


def check_superexec_address(cert: x509.Certificate, *, path: Path, host: str) -> None:
    """Refuse a certificate the SuperLink's own SuperExec cannot verify.

    Flower's SuperLink starts a SuperExec that dials it over TLS at
    `superexec_host(host)`; a certificate that does not name that address
    fails every handshake (the SuperLink runs, and the SuperExec that would
    start a run's ServerApp retries in vain). `cert` is the launch's read of
    `path` (`check_certificate`), which the message names.
    """
    dialled = superexec_host(host.strip("[]"))
    if not certificate_names_host(cert, dialled):
        raise FedmodelError(
            f"--certs: {path} is not made for {dialled}, the address the "
            f"SuperLink's own SuperExec dials for --host {host}, so no ServerApp "
            "could start; re-issue the certificate with `fedmodel certs superlink "
            f"--dir {path.parent} --reissue` and a --host for each name sites dial "
            "(it names 127.0.0.1 and ::1 besides; signed by the folder's CA, "
            "with its ca.key, so every site keeps its ca.crt), or listen on a "
            "--host the certificate names"
        )
