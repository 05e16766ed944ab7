"""A SuperNode's launch checks that the site's CA verifies its SuperLink.

Flower's SuperNode reports a wrong `--ca-cert`, or a SuperLink certificate made
for another host name or expired, in a dozen lines that name neither the option
nor the fix. `fedmodel supernode` opens one TLS handshake to the SuperLink
first and stops with one line saying what to change. A SuperLink it cannot
reach yet is no error (a warning naming the address): Flower then connects (and
checks) on its own.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path

from fedmodel.deploy.port_check import PORTS_TEXT, port_number
from fedmodel.errors import FedmodelError

log = logging.getLogger(__name__)
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = {62, 64}
# OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID and X509_V_ERR_CERT_HAS_EXPIRED.
_NOT_YET_VALID = 9
_EXPIRED = 10
CONNECT_TIMEOUT_SECONDS = 5.0


def superlink_host_port(superlink: str) -> tuple[str, int]:
    """Host and port of Flower's `host:port` (an IPv6 host in brackets).

    ValueError names what is wrong: Flower would start the SuperNode first and
    then stop with "SuperLink address (...) cannot be parsed".
    """
    scheme, prefixed, rest = superlink.partition("://")
    if prefixed:
        # Flower's parse_address refuses any "://", after the SuperNode
        # started; the SuperLink's own log shows its address as a URL.
        raise ValueError(
            f"{superlink!r} has a URL prefix ({scheme}://), which Flower does not "
            f"take: give host:port alone, e.g. {rest.rstrip('/')}"
        )
    host, _, port = superlink.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = port_number(port)
    if not host or any(c.isspace() for c in host) or number is None:
        raise ValueError(
            f"{superlink!r} is not host:port with a port {PORTS_TEXT}, e.g. "
            "superlink.example.org:9093 or [::1]:9093"
        )
    return host, number


def check_superlink_certificate(superlink: str, ca_cert: Path) -> None:
    """Refuse when `ca_cert` does not verify the SuperLink at `superlink`.

    `superlink` is Flower's `host:port` (an IPv6 host in brackets).
    """
    try:
        host, port = superlink_host_port(superlink)
    except ValueError as error:
        raise FedmodelError(f"--superlink {error}") from None
    context = ssl.create_default_context(cafile=str(ca_cert))
    try:
        with (
            socket.create_connection(
                (host, port), timeout=CONNECT_TIMEOUT_SECONDS
            ) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return
    except ssl.SSLCertVerificationError as error:
        raise _verify_refusal(error, superlink, host=host, ca_cert=ca_cert) from None
    except ssl.SSLError as error:
        raise FedmodelError(
            f"--superlink {superlink}: no TLS handshake with it ({error.reason}): "
            "check the address, or whether that SuperLink runs --insecure"
        ) from None
    except OSError as error:
        # A warning, so the console shows it: Flower's own retry lines
        # ("Connection attempt failed") name neither the address nor a fix.
        log.warning(
            "--superlink %s: no SuperLink answers there yet (%s); the SuperNode "
            "keeps trying (Flower's 'Connection attempt failed' lines) and "
            "checks --ca-cert when it connects. If it never connects, check "
            "the host and port with the server operator",
            superlink,
            error.strerror or error,
        )


def _verify_refusal(
    error: ssl.SSLCertVerificationError, superlink: str, *, host: str, ca_cert: Path
) -> FedmodelError:
    """What a failed check of the SuperLink's certificate tells the site to do.

    The launch checked --ca-cert's own dates first, so an expired certificate
    here is the SuperLink's, which its operator re-issues.
    """
    reissue = (
        "(`fedmodel certs superlink --dir DIR --reissue --host "
        f"{host}` and a --host for each name sites dial; signed by the same CA, "
        "so this site keeps its --ca-cert)"
    )
    found = f"--superlink {superlink}: the SuperLink's certificate"
    if error.verify_code in _NAME_MISMATCH:
        return FedmodelError(
            f"{found} is not made for {host} ({error.verify_message}): dial a "
            "name it was made for, or have the server operator re-issue the "
            f"SuperLink's certificate to name it {reissue}"
        )
    if error.verify_code == _EXPIRED:
        return FedmodelError(
            f"{found} has expired ({error.verify_message}): the server operator "
            f"re-issues it {reissue}; start this SuperNode again once they have"
        )
    if error.verify_code == _NOT_YET_VALID:
        return FedmodelError(
            f"{found} is not valid yet ({error.verify_message}): this machine's "
            "clock or the server's is wrong; set it right"
        )
    return FedmodelError(
        f"--ca-cert {ca_cert} does not verify the certificate of the "
        f"SuperLink at {superlink} ({error.verify_message}): use the ca.crt "
        "from the server operator who runs that SuperLink"
    )
