"""Sign a certificate of a `fedmodel certs superlink` folder again with other dates.

For tests of a certificate that has expired or is not valid yet: the same
subject, key and extensions, signed by the folder's CA key (`ca.crt` by itself).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_pem_private_key,
)


def sign_with_dates(path: Path, *, days_from_now: tuple[int, int]) -> None:
    """Sign `path` again, valid from and until the given days from now (UTC).

    `path` is a certificate in a folder beside its CA's `ca.key`.
    """
    old = x509.load_pem_x509_certificate(path.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    start, end = (now + datetime.timedelta(days=d) for d in days_from_now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    ca_key = load_pem_private_key((path.parent / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    path.write_bytes(builder.sign(ca_key, hashes.SHA384()).public_bytes(Encoding.PEM))
