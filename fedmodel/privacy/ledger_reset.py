"""An operator's explicit reset of a site's privacy ledger: archive, never delete.

Nothing in a run ever resets a ledger. Only the site's operator may start a new
budget, on purpose (for example for a new, disjoint data set), and the old
ledger is kept beside the new one as evidence of what was spent. The number of
archived ledgers is what tells the server, explicitly, that a lower epsilon is
such a reset: the client reports it with every round, and the server refuses a
client whose ledger went back without that count going up.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from fedmodel.errors import FedmodelError
from fedmodel.privacy.charged_records import digests_path
from fedmodel.privacy.durable_file import exclusive_lock
from fedmodel.privacy.ledger_record import (
    CENTRAL_LEDGER_FILE,
    LEDGER_FILE,
    LedgerRecord,
    read_record,
)

ARCHIVE_PATTERN = "privacy_ledger.reset-*.json"


@dataclass(frozen=True)
class LedgerStatus:
    """What a ledger file says a site has spent."""

    path: Path
    client_id: str
    epsilon: float
    delta: float
    target_epsilon: float
    rounds: int
    budget_exhausted: bool
    data_fingerprint: str
    # `accountants.stated_by_rdp`'s words, where the epsilon is RDP's ("" if not).
    stated_by: str = ""


def ledger_status(state_dir: Path) -> LedgerStatus:
    """Read the ledger in a site's state directory, refusing one edited by hand."""
    path = _ledger_path(state_dir)
    return _status(path, read_record(path))


def central_ledger_status(run_dir: Path) -> LedgerStatus | None:
    """What the server's client-level ledger spent, where `run_dir` holds one.

    Only a `privacy=central` simulation writes it (a deployment refuses
    central DP), in its run folder; None for any other folder.
    """
    if not _is_central_run_folder(run_dir):
        return None
    path = run_dir / CENTRAL_LEDGER_FILE
    return _status(path, read_record(path))


def archive_ledger(state_dir: Path) -> tuple[LedgerStatus | None, Path]:
    """Move the ledger aside as `privacy_ledger.reset-<UTC time>.json`.

    Returns what the archived ledger had spent (None for a ledger that cannot
    be read or was edited: archived as it is, what it spent unknown) and where
    it went; its record digests, if any, go beside it. Holds the ledger's
    lock, so a round charging at the same moment is never lost between the
    two files: it lands in the archived one, or, where it opened the ledger
    before the reset, it finds the file gone and writes the archived rounds
    back with its own (`ledger_commit`, which logs it), an over-count that
    undoes the reset; a round that opens the ledger after it starts the new
    budget.
    """
    path = _ledger_path(state_dir)
    # The accountant `_status` asks loads Opacus, seconds of imports (4 to 8 s
    # here): done before the lock, which a round charging the ledger waits on.
    import fedmodel.privacy.ledger_check  # noqa: F401

    with exclusive_lock(path):
        try:
            status: LedgerStatus | None = _status(path, read_record(path))
        except FedmodelError:  # the file is there (`_ledger_path`) but unusable
            status = None
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = path.with_name(ARCHIVE_PATTERN.replace("*", stamp))
        if target.exists():
            raise FedmodelError(f"{target} already exists; try again")
        path.rename(target)
        # The records it charged go with it (`reset_overlap` reads them).
        if (digests := digests_path(path)).is_file():
            digests.rename(digests_path(target))
    return status, target


def archived_ledgers(state_dir: Path) -> list[Path]:
    """The ledgers the site's operator archived in `state_dir`, oldest first."""
    return sorted(state_dir.glob(ARCHIVE_PATTERN))


def reset_and_not_charged(state_dir: Path) -> str | None:
    """What `state_dir` holds when its ledger was reset and no round charged since.

    None when it holds a ledger, or no archived one. `fedmodel ledger show`
    prints this as the site's state (nothing spent on the new budget), and
    `fedmodel ledger reset` refuses with it (there is nothing to reset).
    """
    earlier = archived_ledgers(state_dir)
    if (state_dir / LEDGER_FILE).exists() or not earlier:
        return None
    return (
        f"{state_dir}: nothing spent since its operator reset the ledger "
        f"({len(earlier)} archived, the latest {earlier[-1].name}); the next "
        "round that charges this site starts the new budget"
    )


def reset_count(state_dir: Path) -> int:
    """How many ledgers the site's operator archived in `state_dir`.

    The client reports it with every round: a count higher than the server saw
    before is how the server learns, explicitly, that a lower epsilon is a new
    budget started on purpose and not a ledger that lost its charges.
    """
    return len(archived_ledgers(state_dir))


def _ledger_path(state_dir: Path) -> Path:
    path = state_dir / LEDGER_FILE
    if not state_dir.is_dir():
        raise FedmodelError(
            f"--state-dir {state_dir}: no such folder; give the site's state "
            "directory (the SuperNode's --state-dir)"
        )
    if _is_central_run_folder(state_dir):
        # The run's one budget: every client's updates were released under it.
        central = state_dir / CENTRAL_LEDGER_FILE
        raise FedmodelError(
            f"{central} is the server's client-level ledger of a privacy=central "
            "run, not a site's, and is never reset: a new budget would not count "
            "the rounds it already released; a new run in a folder of its own "
            "starts a new budget (`fedmodel ledger show` prints what it spent)"
        )
    if (reset := reset_and_not_charged(state_dir)) is not None:
        raise FedmodelError(f"{reset}, so there is nothing to reset")
    if not path.is_file():
        raise FedmodelError(
            f"no privacy ledger at {path}: no round has charged this site yet (its "
            f"first round writes the ledger), or {state_dir} is not the site's "
            "state directory (the SuperNode's --state-dir)"
        )
    return path


def _is_central_run_folder(folder: Path) -> bool:
    """Whether `folder` holds the server's client-level ledger and no site's.

    A site's ledger beside it makes the folder that site's state directory.
    """
    central, site = folder / CENTRAL_LEDGER_FILE, folder / LEDGER_FILE
    return central.is_file() and not site.exists()


def _status(path: Path, record: LedgerRecord) -> LedgerStatus:
    # The accountant (Opacus) only here: every query message counts resets.
    from fedmodel.privacy.accountants import stated_by_rdp
    from fedmodel.privacy.ledger_check import checked_epsilon

    return LedgerStatus(
        path=path,
        client_id=record.client_id,
        epsilon=checked_epsilon(path, record),
        delta=record.delta,
        target_epsilon=record.target_epsilon,
        rounds=len(record.rounds),
        budget_exhausted=record.budget_exhausted,
        data_fingerprint=record.data_fingerprint,
        stated_by=stated_by_rdp(record.accountant, record.steps),
    )
