"""Key and certificate files of a deployment: names, reads, checks and safe writes.

`fedmodel certs` writes each file once (a key 0600 from the start) and never
overwrites one; `fedmodel superlink` and `fedmodel supernode` check that each
file they are given parses before Flower starts. Every key and certificate is
read here, so a file that does not parse is refused in one way: the option,
the file, what is wrong and what to give instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.run.folder_check import check_writable_folder

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SUPERLINK_CERT = "superlink.crt"
SUPERLINK_KEY = "superlink.key"
# P-384: a NIST curve, which Flower requires for SuperNode keys.
CURVE = ec.SECP384R1
_Loaded = TypeVar("_Loaded")


class CertFileRefusal(FedmodelError):
    """A key or certificate file refused by a read here; `problem` says what is wrong.

    `problem` follows the file's name ("is not a PEM certificate (...)"), for
    a caller that goes on without the file and says why.
    """

    def __init__(self, path: Path, problem: str, *, option: str, instead: str) -> None:
        super().__init__(f"{option}: {path} {problem}; give {instead}")
        self.problem = problem


def read_certificate(path: Path, *, option: str, instead: str) -> x509.Certificate:
    """The first of the PEM certificates in `path`, each of which must parse.

    TLS reads the whole file (a CA file or a chain), so a broken certificate
    after the first refuses it too, as does one whose extensions do not parse
    or a file that holds none or cannot be read: CertFileRefusal naming
    `option` and `path`, ending "give {instead}".
    """
    certificates = _read_pem(
        path,
        x509.load_pem_x509_certificates,
        option=option,
        what="a PEM certificate",
        instead=instead,
    )
    for certificate in certificates:
        _check_extensions(certificate, path, option=option, instead=instead)
    return certificates[0]


def _check_extensions(
    certificate: x509.Certificate, path: Path, *, option: str, instead: str
) -> None:
    """Refuse a certificate whose extensions do not parse, as `read_certificate`.

    cryptography parses them at the first look (`.extensions`), not on load:
    a malformed or repeated one (a subjectAltName, say) passed the load and
    raised from a later check of the names, a traceback.
    """
    try:
        certificate.extensions  # noqa: B018 - the look that parses them
    except (ValueError, x509.DuplicateExtension) as exc:
        raise CertFileRefusal(
            path,
            f"holds a certificate whose extensions do not parse ({exc})",
            option=option,
            instead=instead,
        ) from exc


def read_private_key(path: Path, *, option: str, instead: str) -> PrivateKeyTypes:
    """The unencrypted private key in the PEM file `path`, refused as above."""
    return _read_pem(
        path,
        lambda data: serialization.load_pem_private_key(data, None),
        option=option,
        what="an unencrypted PEM private key",
        instead=instead,
    )


def _read_pem(
    path: Path,
    load: Callable[[bytes], _Loaded],
    *,
    option: str,
    what: str,
    instead: str,
) -> _Loaded:
    """`load` of the bytes of `path`, refused as `read_certificate` says."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
        raise CertFileRefusal(path, problem, option=option, instead=instead) from exc
    try:
        return load(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertFileRefusal(
            path, f"is not {what} ({exc})", option=option, instead=instead
        ) from exc


def check_certificate(
    path: Path, *, option: str, expected: str = CA_CERT
) -> x509.Certificate:
    """`read_certificate` of `path`, advising the `expected` file instead.

    The launch's check: `expected` is the file `fedmodel certs superlink`
    wrote, which the message says to give instead.
    """
    return read_certificate(
        path,
        option=option,
        instead=f"the {expected} that `fedmodel certs superlink` wrote",
    )


def check_superlink_key(path: Path, *, option: str) -> None:
    """Refuse a SuperLink TLS key file that holds no unencrypted PEM private key."""
    read_private_key(
        path,
        option=option,
        instead=f"the folder `fedmodel certs superlink` wrote {SUPERLINK_KEY} into",
    )


def check_site_private_key(path: Path, *, option: str) -> None:
    """Refuse a key Flower cannot sign in with (it takes OpenSSH EC keys only)."""
    what = "an unencrypted OpenSSH EC private key"
    instead = "the private key `fedmodel certs site` wrote (the file without .pub)"
    key = _read_pem(
        path,
        lambda data: serialization.load_ssh_private_key(data, None),
        option=option,
        what=what,
        instead=instead,
    )
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FedmodelError(
            f"{option}: {path} is not {what} (a {type(key).__name__}, not an EC "
            f"key); give {instead}"
        )


def make_folder(directory: Path) -> None:
    """Make the output folder `--dir`, refusing one that cannot be written."""
    check_writable_folder(
        directory, key="--dir", what="the output folder", example="certs"
    )
    directory.mkdir(parents=True, exist_ok=True)


def refuse_existing(paths: list[Path], *, instead: str = "") -> None:
    """Refuse to write where any of `paths` exists: no key is overwritten.

    `instead` ends the message with the way on a caller knows of.
    """
    existing = [str(path) for path in paths if path.exists()]
    if existing:
        raise FedmodelError(
            f"{', '.join(existing)} already "
            f"{plural(len(existing), 'exists', 'exist')}; fedmodel never overwrites a "
            "key or certificate: choose another --dir, or move the old files away"
            f"{instead}"
        )


def pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    """`key` as an unencrypted PKCS #8 PEM, as TLS servers load it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private(path: Path, data: bytes) -> None:
    """Write a new private key file, readable by its owner only."""
    # Created 0600 from the start, so the key is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def write_public(path: Path, data: bytes) -> None:
    """Write a new certificate or public key file, readable by all."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
