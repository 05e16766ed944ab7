"""Certificate dates: `--days`' default and bounds, and the launches' check of them.

Used by `create_superlink_certificates` and by `fedmodel certs superlink`'s
arguments; kept apart from certs.py so `--help` does not import cryptography.
The launches check a certificate's dates before Flower starts: an expired
SuperLink certificate let `flower-superlink` run with every handshake failing
(`certificate has expired` in its SuperExec's log, again and again), so no
run's ServerApp could start.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_DAYS = 365
# A century: longer than any key should live, and far inside the dates a
# certificate can hold (to the year 9999).
MAX_DAYS = 36_500


def check_valid_now(
    cert: x509.Certificate,
    *,
    path: Path,
    option: str,
    expired_fix: str,
    now: datetime.datetime | None = None,
) -> None:
    """Refuse `cert` (read from `path`) outside its dates, naming `option`.

    An expired one ends with `expired_fix`, what the caller's operator does;
    one not valid yet points at a machine's clock.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc <= now:
        raise FedmodelError(
            f"{option}: {path} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; {expired_fix}"
        )
    if cert.not_valid_before_utc > now:
        raise FedmodelError(
            f"{option}: {path} is valid only from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC, and this machine's "
            f"clock reads {now:%Y-%m-%d %H:%M} UTC: set the clock of this machine "
            "right, or of the one that made the certificate (then make it again)"
        )
