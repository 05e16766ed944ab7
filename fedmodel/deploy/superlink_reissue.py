"""The SuperLink's certificate re-issued by the CA already in its folder, for new hosts.

A host added later (a name or address sites dial) needs a certificate that
names it. Signed by the folder's own CA, the new certificate verifies against
the `ca.crt` every site already holds, so no site needs a new one. The CA's
key and certificate and the SuperLink's key are read, never written: the new
certificate is for the same SuperLink key as the one it replaces. The old
certificate is kept beside it (`superlink.replaced-<UTC time>.crt`) and the
new one takes its name in one rename, so a SuperLink started meanwhile reads
the old or the new, each the certificate of `superlink.key`. An old
certificate that cannot be read (missing, not PEM, its extensions broken)
does not stop a re-issue: it is kept as it is, its names not compared. A
re-issue also renews an expired certificate, which `fedmodel superlink`
refuses to serve.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedmodel.deploy.cert_files import (
    CA_CERT,
    CA_KEY,
    SUPERLINK_CERT,
    SUPERLINK_KEY,
    CertFileRefusal,
    make_folder,
    read_certificate,
    read_private_key,
    write_public,
)
from fedmodel.deploy.cert_validity import check_valid_now
from fedmodel.deploy.certs import (
    check_days,
    subject_alternative_names,
    superlink_certificate,
)
from fedmodel.errors import FedmodelError
from fedmodel.privacy.durable_file import write_durably

REPLACED_PATTERN = "superlink.replaced-*.crt"
_FOLDER = "the folder `fedmodel certs superlink` wrote, which the SuperLink runs with"


@dataclass(frozen=True)
class ReissuedCertificate:
    """The re-issued certificate, the old one kept, and the names each holds.

    An old certificate that could not be read leaves `unread` saying why (the
    file and the reason) and `dropped` None: the names it held are unknown. A
    missing one leaves `replaced` None: there was nothing to keep.
    """

    cert: Path
    replaced: Path | None
    names: tuple[str, ...]
    dropped: tuple[str, ...] | None
    unread: str | None


def reissue_superlink_certificate(
    directory: Path, *, hosts: list[str], days: int | None = None
) -> ReissuedCertificate:
    """Re-issue `superlink.crt` in `directory` for `hosts`, signed by its CA.

    `hosts` are every name and address the certificate should hold, as for
    `create_superlink_certificates` (the loopback addresses are added); a
    name only the old certificate held is returned in `dropped` (None when
    the old one could not be read). The new certificate is valid for
    `days`, or without them until the CA's end, and never beyond it: no
    site verifies it after that.
    """
    names = subject_alternative_names(hosts)
    if days is not None:
        check_days(days)
    ca_cert, ca_key = _folder_ca(directory)
    link_key = _superlink_key(directory / SUPERLINK_KEY)
    cert_path = directory / SUPERLINK_CERT
    old_names, unread = _old_names(cert_path)
    now = datetime.datetime.now(datetime.UTC)
    until = _valid_until(directory / CA_CERT, ca_cert, now=now, days=days)
    cert = superlink_certificate(
        link_key.public_key(),
        names,
        ca_name=ca_cert.subject,
        ca_key=ca_key,
        now=now,
        until=until,
    )
    make_folder(directory)  # refuses one that cannot be written, before a write
    replaced = None
    if cert_path.exists():
        replaced = cert_path.with_name(
            REPLACED_PATTERN.replace("*", f"{now:%Y%m%dT%H%M%S.%fZ}")
        )
        write_public(replaced, cert_path.read_bytes())
    write_durably(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    os.chmod(cert_path, 0o644)  # a certificate, readable as `write_public` makes it
    new_names = _names(cert)
    dropped = None
    if old_names is not None:
        dropped = tuple(name for name in old_names if name not in new_names)
    return ReissuedCertificate(
        cert=cert_path,
        replaced=replaced,
        names=tuple(new_names),
        dropped=dropped,
        unread=unread,
    )


def _old_names(path: Path) -> tuple[list[str] | None, str | None]:
    """The names the certificate being replaced holds, or None and why not.

    One that does not parse, or no file, lets the re-issue go on: it needs
    the CA and `superlink.key` only, and a refusal left a new CA, whose
    ca.crt every site then needs. A file whose bytes cannot be read (a
    folder, no permission) is refused as before: no copy of it could be kept.
    """
    try:
        return _names(read_certificate(path, option="--dir", instead=_FOLDER)), None
    except CertFileRefusal as refusal:
        if path.exists() and isinstance(refusal.__cause__, OSError):
            raise
        return None, f"{path} {refusal.problem}"


def _valid_until(
    path: Path, ca_cert: x509.Certificate, *, now: datetime.datetime, days: int | None
) -> datetime.datetime:
    """When the re-issued certificate ends: after `days`, or with the CA."""
    ca_end = ca_cert.not_valid_after_utc
    new_ca = (
        "a new CA (`fedmodel certs superlink --dir NEW_DIR`), whose ca.crt every "
        "site then needs"
    )
    check_valid_now(
        ca_cert,
        path=path,
        option="--dir",
        expired_fix=f"no site verifies a certificate it signs; make {new_ca}",
        now=now,
    )
    if days is None:
        return ca_end
    until = now + datetime.timedelta(days=days)
    if until > ca_end:
        raise FedmodelError(
            f"--days {days}: the certificate would outlast the CA in {path}, valid "
            f"until {ca_end:%Y-%m-%d}, after which no site verifies it; give --days "
            f"{(ca_end - now).days} or fewer, or leave --days out (valid as long as "
            f"the CA), or make {new_ca}"
        )
    return until


def _folder_ca(
    directory: Path,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA's certificate and key in `directory`, refused unless they match."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not cert_path.is_file():
        raise FedmodelError(
            f"--dir {directory} holds no {CA_CERT}: give {_FOLDER} (its CA signs "
            "the re-issued certificate)"
        )
    if not key_path.is_file():
        raise FedmodelError(
            f"--dir {directory} holds {CA_CERT} but not the CA's private key "
            f"{CA_KEY}, which signs the re-issued certificate: copy it back from "
            "where it is kept offline for this command (and move it away again "
            "after); without it only a new CA can sign (`fedmodel certs superlink "
            "--dir NEW_DIR`), whose ca.crt every site then needs"
        )
    ca_cert = read_certificate(cert_path, option="--dir", instead=_FOLDER)
    ca_key = read_private_key(key_path, option="--dir", instead=_FOLDER)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or (
        ca_key.public_key() != ca_cert.public_key()
    ):
        raise FedmodelError(
            f"--dir {directory}: {CA_KEY} is not the key of {CA_CERT}, so what it "
            f"signs would not verify against that {CA_CERT}: bring the CA key "
            "that was made with it"
        )
    return ca_cert, ca_key


def _superlink_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The SuperLink's TLS key the re-issued certificate is for."""
    key = read_private_key(path, option="--dir", instead=_FOLDER)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FedmodelError(
            f"--dir {path.parent}: {SUPERLINK_KEY} is a {type(key).__name__}, "
            f"not the EC key `fedmodel certs superlink` makes; give {_FOLDER}"
        )
    return key


def _names(cert: x509.Certificate) -> list[str]:
    """The names and addresses a certificate holds, as a host is given."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in names.value]
