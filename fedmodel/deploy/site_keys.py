"""A site's SuperNode authentication key pair: the private key stays at the site.

The site sends the public key to the server operator, who registers it with
the SuperLink (`flwr supernode register`); the SuperNode signs in with the
private key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedmodel.deploy.cert_files import (
    CURVE,
    make_folder,
    refuse_existing,
    write_private,
    write_public,
)
from fedmodel.errors import FedmodelError

_SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class SiteKeys:
    """A site's SuperNode authentication key pair (OpenSSH format)."""

    private_key: Path
    public_key: Path


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
    refuse_existing([keys.private_key, keys.public_key])
    make_folder(directory)
    private = ec.generate_private_key(CURVE())
    write_private(
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
    write_public(keys.public_key, public + f" fedmodel-site-{name}\n".encode())
    return keys
