"""Which records a site's new budget shares with ledgers archived by a reset.

A reset is the operator's choice, for records the spent budget did not
cover; on records an archived ledger charged, its epsilon and the new
ledger's add up, and neither ledger says so. Records are matched by the
digests each site ledger keeps (`charged_records`); an archive without
readable digests (archived before they were kept, or damaged) matches only
a file of exactly its records, by fingerprint. Only counts and epsilons are
said, never a record or a digest; no figure any ledger holds changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.config.wording import decimals_up, plural
from fedmodel.errors import FedmodelError
from fedmodel.privacy.charged_records import (
    charged_fingerprints,
    digests_path,
    file_digests,
    read_charged_records,
)
from fedmodel.privacy.ledger_check import checked_epsilon
from fedmodel.privacy.ledger_record import LEDGER_FILE, LedgerRecord, read_record
from fedmodel.privacy.ledger_reset import archived_ledgers
from fedmodel.training.fingerprint import record_digests

if TYPE_CHECKING:
    import datasets


@dataclass
class _Overlap:
    """The records (by index) archived ledgers charged, and what those spent."""

    shared: set[int] = field(default_factory=set)
    spent: list[tuple[Path, float]] = field(default_factory=list)
    undigested: list[Path] = field(default_factory=list)

    def clause(self, records: int) -> str:
        total = sum(epsilon for _, epsilon in self.spent)
        ledgers = len(self.spent)
        return (
            f"{len(self.shared)} of {records} were already charged epsilon "
            f"{decimals_up(total, 4)} in {ledgers} archived "
            f"{plural(ledgers, 'ledger')} (the latest {self.spent[-1][0].name})"
        )


def spent_before_reset(
    state_dir: Path,
    *,
    fingerprint: str,
    records: int,
    digests: Sequence[bytes] | None,
) -> list[str]:
    """Lines for a new budget opened on records an archived ledger charged.

    `digests` are the records' own (`record_digests`), None where the round
    trains on stored features: then only an archive that charged this very
    file matches. The epsilon is the sum over the archives that charged any
    of them, rounded up as `fedmodel ledger show` states it. A line also
    names, once, archives whose digests could not be read.
    """
    overlap = _overlap(
        state_dir, fingerprint=fingerprint, records=records, digests=digests
    )
    lines = []
    if overlap.undigested:
        names = ", ".join(path.name for path in overlap.undigested)
        lines.append(
            f"{state_dir}: no readable record digests beside archived "
            f"{plural(len(overlap.undigested), 'ledger')} {names} (archived "
            "before fedmodel kept them, or damaged), so only a file of exactly "
            "the records they charged is recognised as charged again"
        )
    if overlap.shared:
        lines.append(
            f"{state_dir}: of its training records, {overlap.clause(records)}; "
            "the new budget starts at 0, but for those records the epsilons add "
            "up. Reset a ledger only for new records"
        )
    return lines


def digests_to_note(
    ledger: Path, *, fingerprint: str, new: bool, split: datasets.Dataset | None
) -> tuple[bytes, ...] | None:
    """A site's record digests its `ledger` does not hold yet, else None.

    Hashed once per ledger and file: a round whose file the digests list
    reads their header alone. `split` is None for stored features, which
    carry no records: an archived ledger's digests of their file, noted by
    the round that read it, stand in.
    """
    if not new:
        try:
            if fingerprint in (charged_fingerprints(digests_path(ledger)) or ()):
                return None
        except FedmodelError:
            pass  # rewritten, and said, once the round is charged
    if split is None:
        archived = reversed(archived_ledgers(ledger.parent))
        return file_digests(map(digests_path, archived), fingerprint)
    return record_digests(split)


def charged_before_reset(state_dir: Path, *, fingerprint: str) -> str | None:
    """What `fedmodel ledger show` adds of the site's ledger.

    How many records of the file it last charged (`fingerprint`) archived
    ledgers charged too, from the digests in the state directory alone (no
    data file is read); None where none did or where the ledger keeps no
    readable digests of that file.
    """
    try:
        charged = read_charged_records(digests_path(state_dir / LEDGER_FILE))
    except FedmodelError:
        return None
    digests = None if charged is None else charged.files.get(fingerprint)
    if digests is None:
        return None
    overlap = _overlap(
        state_dir,
        fingerprint=fingerprint,
        records=len(digests),
        digests=digests,
    )
    if not overlap.shared:
        return None
    return (
        f"; of the records of the file it last charged, "
        f"{overlap.clause(len(digests))}, and for those the epsilons add up"
    )


def _overlap(
    state_dir: Path,
    *,
    fingerprint: str,
    records: int,
    digests: Sequence[bytes] | None,
) -> _Overlap:
    """What the archives of `state_dir` charged of these records, and spent.

    The accountant recomputes an archive's epsilon only where there is
    something to say of it: it shares records, or has no readable digests.
    """
    overlap = _Overlap()
    for path in archived_ledgers(state_dir):
        try:
            record = read_record(path)
        except FedmodelError:
            continue  # edited since, it cannot say what it spent; not a refusal
        if not record.rounds:
            continue
        shared = _charged_by(
            path, record, fingerprint=fingerprint, records=records, digests=digests
        )
        undigested = shared is None
        if shared is None:
            same_file = record.data_fingerprint == fingerprint
            shared = set(range(records)) if same_file else set()
        if not shared and not undigested:
            continue
        try:
            epsilon = checked_epsilon(path, record)
        except FedmodelError:
            continue  # edited since, it cannot say what it spent; not a refusal
        if undigested:
            overlap.undigested.append(path)
        if shared:
            overlap.shared |= shared
            overlap.spent.append((path, epsilon))
    return overlap


def _charged_by(
    archive: Path,
    record: LedgerRecord,
    *,
    fingerprint: str,
    records: int,
    digests: Sequence[bytes] | None,
) -> set[int] | None:
    """The indices of the records `archive` charged; None without its digests."""
    try:
        charged = read_charged_records(digests_path(archive))
    except FedmodelError:
        return None
    if charged is None:
        return None
    if fingerprint in charged.files or record.data_fingerprint == fingerprint:
        return set(range(records))
    if digests is None:
        return set()
    theirs = charged.digests()
    return {i for i, digest in enumerate(digests) if digest in theirs}
