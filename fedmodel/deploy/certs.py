"""TLS certificates and SuperNode authentication keys for a deployment.

The server operator creates a certificate authority and the SuperLink's
certificate (with the addresses sites dial as subject alternative names); each
site creates its own authentication key pair, keeps the private key and sends
the public key to the server operator, who registers it with the SuperLink.
Everything is made with the `cryptography` library; nothing is hand-rolled.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedmodel.config.wording import plural
from fedmodel.deploy.cert_validity import DEFAULT_DAYS, MAX_DAYS
from fedmodel.errors import FedmodelError
from fedmodel.run.folder_check import check_writable_folder

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SUPERLINK_CERT = "superlink.crt"
SUPERLINK_KEY = "superlink.key"
_SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# P-384: a NIST curve, which Flower requires for SuperNode keys.
_CURVE = ec.SECP384R1
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


@dataclass(frozen=True)
class SiteKeys:
    """A site's SuperNode authentication key pair (OpenSSH format)."""

    private_key: Path
    public_key: Path


def create_superlink_certificates(
    directory: Path, *, hosts: list[str], days: int = DEFAULT_DAYS
) -> SuperLinkCertificates:
    """Create a CA and a SuperLink certificate signed by it, valid for `hosts`.

    `hosts` are the names and IP addresses SuperNodes and the `flwr` CLI use to
    reach the SuperLink; each becomes a subject alternative name, as do
    `LOOPBACK_HOSTS`, which the SuperLink's own SuperExec dials. Existing
    files are never overwritten.
    """
    if not hosts:
        raise FedmodelError(
            "name at least one host the SuperLink is reached at, e.g. "
            "--host superlink.example.org --host 10.0.0.5"
        )
    if not 1 <= days <= MAX_DAYS:
        raise FedmodelError(
            f"--days must be between 1 and {MAX_DAYS} (a century), got {days}; "
            "renew certificates rather than making them last longer"
        )
    names = [_subject_alternative_name(host) for host in hosts]
    names += [
        n for n in map(_subject_alternative_name, LOOPBACK_HOSTS) if n not in names
    ]
    paths = SuperLinkCertificates(
        ca_cert=directory / CA_CERT,
        ca_key=directory / CA_KEY,
        cert=directory / SUPERLINK_CERT,
        key=directory / SUPERLINK_KEY,
    )
    _refuse_existing([paths.ca_cert, paths.ca_key, paths.cert, paths.key])
    _make_folder(directory)

    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(_CURVE())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedmodel CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now=now, until=until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    link_key = ec.generate_private_key(_CURVE())
    link_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    link_cert = (
        _builder(link_name, ca_name, link_key.public_key(), now=now, until=until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    _write_private(paths.ca_key, _pem_private(ca_key))
    _write_public(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(paths.key, _pem_private(link_key))
    _write_public(paths.cert, link_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def create_site_keys(directory: Path, *, name: str) -> SiteKeys:
    """Create a site's SuperNode authentication key pair as `<name>` / `<name>.pub`.

    The private key stays at the site (mode 0600); the public key is what the
    server operator registers with `flwr supernode register`.
    """
    if not _SITE_NAME.match(name):
        raise FedmodelError(
            f"site name {name!r} is not usable as a file name: use letters, "
            "digits, '.', '_' and '-' (at most 64 characters)"
        )
    keys = SiteKeys(private_key=directory / name, public_key=directory / f"{name}.pub")
    _refuse_existing([keys.private_key, keys.public_key])
    _make_folder(directory)
    private = ec.generate_private_key(_CURVE())
    _write_private(
        keys.private_key,
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write_public(keys.public_key, public + f" fedmodel-site-{name}\n".encode())
    return keys


def check_certificate(path: Path, *, option: str, expected: str = CA_CERT) -> None:
    """Refuse a file that holds no PEM certificate, naming `option`."""
    try:
        x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise FedmodelError(
            f"{option}: {path} is not a PEM certificate ({exc}); give the "
            f"{expected} that `fedmodel certs superlink` wrote"
        ) from exc


def check_superlink_key(path: Path, *, option: str) -> None:
    """Refuse a SuperLink TLS key file that holds no unencrypted PEM private key."""
    try:
        serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise FedmodelError(
            f"{option}: {path} is not an unencrypted PEM private key ({exc}); give "
            f"the folder `fedmodel certs superlink` wrote {SUPERLINK_KEY} into"
        ) from exc


def check_site_private_key(path: Path, *, option: str) -> None:
    """Refuse a key Flower cannot sign in with (it takes OpenSSH EC keys only)."""
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        problem = str(exc)
    else:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return
        problem = f"a {type(key).__name__}, not an EC key"
    raise FedmodelError(
        f"{option}: {path} is not an unencrypted OpenSSH EC private key "
        f"({problem}); give the private key `fedmodel certs site` wrote (the "
        "file without .pub)"
    )


def _make_folder(directory: Path) -> None:
    check_writable_folder(
        directory, key="--dir", what="the output folder", example="certs"
    )
    directory.mkdir(parents=True, exist_ok=True)


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


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _refuse_existing(paths: list[Path]) -> None:
    existing = [str(path) for path in paths if path.exists()]
    if existing:
        raise FedmodelError(
            f"{', '.join(existing)} already "
            f"{plural(len(existing), 'exists', 'exist')}; fedmodel never overwrites a "
            "key or certificate: choose another --dir, or move the old files away"
        )


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start, so the key is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
