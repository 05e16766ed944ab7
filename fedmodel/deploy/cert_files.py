"""Key and certificate files of a deployment: their names, checks and safe writes.

`fedmodel certs` writes each file once (a key 0600 from the start) and never
overwrites one; `fedmodel superlink` and `fedmodel supernode` check that each
file they are given parses before Flower starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.run.folder_check import check_writable_folder

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SUPERLINK_CERT = "superlink.crt"
SUPERLINK_KEY = "superlink.key"
# P-384: a NIST curve, which Flower requires for SuperNode keys.
CURVE = ec.SECP384R1


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
