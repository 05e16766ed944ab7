"""The CA and the SuperLink's TLS certificate, made by the server operator.

The certificate names the addresses sites dial as subject alternative names;
every site verifies it with the CA's certificate, `ca.crt`. A site's own
authentication key pair is made at the site (`site_keys.py`); a certificate
for new hosts is re-issued by the same CA (`superlink_reissue.py`). Everything
is made with the `cryptography` library; nothing is hand-rolled.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedmodel.deploy.cert_files import (
    CA_CERT,
    CA_KEY,
    CURVE,
    SUPERLINK_CERT,
    SUPERLINK_KEY,
    make_folder,
    pem_private,
    refuse_existing,
    write_private,
    write_public,
)
from fedmodel.deploy.cert_validity import DEFAULT_DAYS, MAX_DAYS
from fedmodel.errors import FedmodelError

# Flower 1.41's SuperLink starts its own SuperExec, which dials the SuperLink's
# --host over TLS, a bind-all host as its loopback address (flwr's
# resolve_bind_address: 0.0.0.0 as 127.0.0.1, :: as ::1). Every SuperLink
# certificate names both, so `fedmodel superlink --host 0.0.0.0` works.
LOOPBACK_HOSTS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class SuperLinkCertificates:
    """Where the CA and the SuperLink's certificate and key were written."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def create_superlink_certificates(
    directory: Path, *, hosts: list[str], days: int = DEFAULT_DAYS
) -> SuperLinkCertificates:
    """Create a CA and a SuperLink certificate signed by it, valid for `hosts`.

    `hosts` are the names and IP addresses SuperNodes and the `flwr` CLI use to
    reach the SuperLink; each becomes a subject alternative name, as do
    `LOOPBACK_HOSTS`, which the SuperLink's own SuperExec dials. Existing
    files are never overwritten.
    """
    names = subject_alternative_names(hosts)
    check_days(days)
    paths = SuperLinkCertificates(
        ca_cert=directory / CA_CERT,
        ca_key=directory / CA_KEY,
        cert=directory / SUPERLINK_CERT,
        key=directory / SUPERLINK_KEY,
    )
    # A CA already there is most often one whose ca.crt the sites hold: a new
    # host for the SuperLink needs a certificate from it, not a new CA.
    reissue = (
        "; to add a host to the SuperLink's certificate, keep this --dir and add "
        "--reissue (signed by the CA there, so every site keeps its ca.crt)"
    )
    refuse_existing(
        [paths.ca_cert, paths.ca_key, paths.cert, paths.key],
        instead=reissue if paths.ca_cert.exists() else "",
    )
    make_folder(directory)

    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(CURVE())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedmodel CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now=now, until=until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    link_key = ec.generate_private_key(CURVE())
    link_cert = superlink_certificate(
        link_key.public_key(),
        names,
        ca_name=ca_name,
        ca_key=ca_key,
        now=now,
        until=until,
    )
    write_private(paths.ca_key, pem_private(ca_key))
    write_public(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    write_private(paths.key, pem_private(link_key))
    write_public(paths.cert, link_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def subject_alternative_names(hosts: list[str]) -> list[x509.GeneralName]:
    """`hosts`, then the `LOOPBACK_HOSTS` not among them, as alternative names."""
    if not hosts:
        raise FedmodelError(
            "name at least one host the SuperLink is reached at, e.g. "
            "--host superlink.example.org --host 10.0.0.5"
        )
    names = [_subject_alternative_name(host) for host in hosts]
    return names + [
        n for n in map(_subject_alternative_name, LOOPBACK_HOSTS) if n not in names
    ]


def check_days(days: int) -> None:
    """Refuse a validity (`--days`) outside 1 to `MAX_DAYS`."""
    if not 1 <= days <= MAX_DAYS:
        raise FedmodelError(
            f"--days must be between 1 and {MAX_DAYS} (a century), got {days}; "
            "renew certificates rather than making them last longer"
        )


def superlink_certificate(
    public_key: ec.EllipticCurvePublicKey,
    names: list[x509.GeneralName],
    *,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    until: datetime.datetime,
) -> x509.Certificate:
    """The SuperLink's TLS server certificate for `names`, signed by the CA.

    Its subject's common name is the first of `names`.
    """
    first = names[0].value
    link_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(first))])
    return (
        _builder(link_name, ca_name, public_key, now=now, until=until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA384())
    )


def _subject_alternative_name(host: str) -> x509.GeneralName:
    host = host.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.match(r"^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$", host):
        raise FedmodelError(
            f"host {host!r} is neither an IP address nor a DNS name; give the "
            "name or address SuperNodes use to reach the SuperLink (no port)"
        )
    return x509.DNSName(host)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime.datetime,
    until: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
