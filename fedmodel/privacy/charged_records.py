"""Digests of the records a site's ledger charged, kept beside it at the site.

`fedmodel ledger reset` starts a new budget, sound only for records the old
one did not charge; a whole-file fingerprint cannot tell a file that grew
from a new one. So a site's ledger keeps, in `privacy_ledger.records` beside
it (archived with it), a short digest of each record it charged and the
fingerprints of the files they came from. It is written when the ledger
first charges a file, not in a round whose file it lists already, and it
never leaves the site's state directory: no reply, log line or summary
holds a digest.

The file is two lines: a JSON header (format, version, each file's
fingerprint and record count) that a round reads alone, then each file's
sorted digests, base64 encoded: 8 bytes a record, stored in under 11
characters (1.07 MB for 100k records), written once per ledger and file. A
Bloom filter would be smaller but its count of shared records a guess; the
digests inside the ledger's JSON would be rewritten with every charge.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedmodel.errors import FedmodelError
from fedmodel.privacy.durable_file import exclusive_lock, write_durably
from fedmodel.training.fingerprint import RECORD_DIGEST_BYTES

log = logging.getLogger(__name__)

DIGESTS_FORMAT = "fedmodel-record-digests"
DIGESTS_VERSION = 1
DIGESTS_SUFFIX = ".records"


@dataclass(frozen=True)
class ChargedRecords:
    """Each file a ledger charged (by fingerprint) and its records' digests."""

    files: dict[str, tuple[bytes, ...]]

    def digests(self) -> frozenset[bytes]:
        """The digests of every record the ledger charged, whatever its file."""
        return frozenset(d for digests in self.files.values() for d in digests)


def digests_path(ledger: Path) -> Path:
    """Where the ledger at `ledger` (or an archived one) keeps its record digests."""
    return ledger.with_suffix(DIGESTS_SUFFIX)


def charged_fingerprints(path: Path) -> frozenset[str] | None:
    """The fingerprints the digest file at `path` covers; None where it is absent.

    Reads the header line alone. A damaged file raises `FedmodelError`.
    """
    if not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8") as handle:
            return frozenset(_counts(path, handle.readline()))
    except (OSError, UnicodeDecodeError) as exc:
        raise FedmodelError(f"record digests {path} cannot be read ({exc})") from exc


def read_charged_records(path: Path) -> ChargedRecords | None:
    """The digest file at `path`; None where absent, `FedmodelError` if damaged."""
    if not path.is_file():
        return None
    try:
        header, body = path.read_text(encoding="utf-8").split("\n", 1)
        raw = base64.b64decode(body.strip(), validate=True)
    except (OSError, UnicodeDecodeError, ValueError, binascii.Error) as exc:
        raise FedmodelError(f"record digests {path} cannot be read ({exc})") from exc
    counts = _counts(path, header)
    size = RECORD_DIGEST_BYTES
    if len(raw) != size * sum(counts.values()):
        raise FedmodelError(
            f"record digests {path} hold {len(raw)} bytes, not {size} for each of "
            f"the {sum(counts.values())} records its header counts"
        )
    files, start = {}, 0
    for fingerprint, count in counts.items():
        chunk = raw[start : start + size * count]
        files[fingerprint] = tuple(
            chunk[i : i + size] for i in range(0, len(chunk), size)
        )
        start += size * count
    return ChargedRecords(files=files)


def file_digests(paths: Iterable[Path], fingerprint: str) -> tuple[bytes, ...] | None:
    """The digests of the file `fingerprint` that one of the digest files holds.

    For a round that trains on stored features, which carry no records: the
    ledger of the round that read the file noted them. Damaged files are
    passed over.
    """
    for path in paths:
        try:
            charged = read_charged_records(path)
        except FedmodelError:
            continue
        if charged is not None and fingerprint in charged.files:
            return charged.files[fingerprint]
    return None


def note_charged_records(
    ledger: Path, *, fingerprint: str, digests: Sequence[bytes], fresh: bool
) -> None:
    """Add the records of `fingerprint` to the digests of the ledger at `ledger`.

    Called once a round's charge is written. `fresh` (a ledger this round
    opened) replaces whatever the file held. Under the ledger's lock, so a
    reset archives the digests with their ledger; a ledger archived since the
    charge gets none. A digest file that cannot be read or written is said
    and training goes on: the check after a reset then compares whole files.
    """
    path = digests_path(ledger)
    with exclusive_lock(ledger):
        if not ledger.is_file():
            return
        held = _kept(path, fresh=fresh)
        if fingerprint in held.files:
            return
        files = {**held.files, fingerprint: tuple(sorted(digests))}
        try:
            write_durably(path, _to_text(ChargedRecords(files=files)))
        except OSError as exc:
            log.warning(
                "could not write record digests %s (%s): after a reset of this "
                "ledger only a file of exactly these records is recognised as "
                "charged by it",
                path,
                exc,
            )


def _kept(path: Path, *, fresh: bool) -> ChargedRecords:
    empty = ChargedRecords(files={})
    if fresh:
        return empty
    try:
        return read_charged_records(path) or empty
    except FedmodelError as exc:
        log.warning(
            "%s; it is written again with this round's records only, so records "
            "only earlier rounds charged are no longer recognised after a reset",
            exc,
        )
        return empty


def _counts(path: Path, header: str) -> dict[str, int]:
    """Each file's fingerprint and its number of records, from the header line."""
    try:
        head = json.loads(header)
        if head["format"] != DIGESTS_FORMAT or head["version"] != DIGESTS_VERSION:
            raise ValueError(f"not {DIGESTS_FORMAT} version {DIGESTS_VERSION}")
        counts = {str(f): int(n) for f, n in head["files"]}
        if any(n < 0 for n in counts.values()):
            raise ValueError("a negative count")
    except (ValueError, KeyError, TypeError) as exc:
        raise FedmodelError(f"record digests {path} cannot be read ({exc})") from exc
    return counts


def _to_text(records: ChargedRecords) -> str:
    header = {
        "format": DIGESTS_FORMAT,
        "version": DIGESTS_VERSION,
        "files": [[f, len(digests)] for f, digests in records.files.items()],
    }
    body = b"".join(d for digests in records.files.values() for d in digests)
    return json.dumps(header) + "\n" + base64.b64encode(body).decode("ascii") + "\n"
