"""A stored ledger reopened under a new plan: another budget refused, changes logged.

Opening a stored ledger, and each charge, compares it with the budget its
opener holds now: the budget itself (client id, accountant, delta) must be the
ledger's; the plan around it may change, and each change is logged.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.privacy.ledger_record import (
    CENTRAL_LEDGER_FILE,
    LEDGER_FILE,
    NEW_RUN,
    LedgerRecord,
    LedgerRefusal,
)

logger = logging.getLogger(__name__)


def check_same_budget(
    path: Path, *, stored: LedgerRecord, wanted: LedgerRecord
) -> None:
    """Refuse to continue a budget kept for another client, delta or accountant."""
    check_same_client(path, stored=stored, client_id=wanted.client_id)
    if stored.accountant != wanted.accountant:
        kept = (
            f"privacy ledger {path} was kept with the {stored.accountant!r} "
            f"accountant, not {wanted.accountant!r}: set privacy.accountant="
            f"{stored.accountant} to continue this budget, or "
        )
        raise _refusal(path, kept)
    check_same_delta(path, stored=stored, delta=wanted.delta)


def check_same_client(path: Path, *, stored: LedgerRecord, client_id: str) -> None:
    """Refuse to continue a ledger that another client (a site) opened."""
    if stored.client_id != client_id:
        raise FedmodelError(
            f"privacy ledger {path} belongs to client {stored.client_id!r}, not "
            f"{client_id!r}: give each client its own state directory "
            "(a deployed site: its own --state-dir; a site whose --site-id was "
            f"{stored.client_id} started it)"
        )


def check_same_delta(path: Path, *, stored: LedgerRecord, delta: float) -> None:
    """Refuse to continue a ledger that states epsilon at another delta."""
    if not math.isclose(stored.delta, delta, rel_tol=1e-9, abs_tol=0.0):
        kept = (
            f"privacy ledger {path} states epsilon at delta {stored.delta!r}, not "
            f"{delta!r}: set privacy.target_delta={stored.delta!r} (a "
            f"deployed site: --delta {stored.delta!r}) to continue this budget, or "
        )
        raise _refusal(path, kept)


def _refusal(path: Path, kept: str) -> LedgerRefusal:
    """A refusal whose way out is `kept`, or else a new budget."""
    forget = " (forgetting the epsilon already spent)"
    return LedgerRefusal(
        kept + _new_budget(path) + forget, in_a_run=kept + NEW_RUN + forget
    )


def note_changes(path: Path, *, stored: LedgerRecord, wanted: LedgerRecord) -> None:
    """Log what a reopened ledger keeps or takes over from the new plan."""
    if stored.data_fingerprint != wanted.data_fingerprint:
        logger.warning(
            "privacy ledger %s was written for different training data "
            "(fingerprint %s, now %s); its spent epsilon %s still counts",
            path,
            stored.data_fingerprint,
            wanted.data_fingerprint,
            decimals_up(stored.spent_epsilon, 4),  # as `fedmodel ledger show`
        )
    if stored.noise_multiplier != wanted.noise_multiplier:
        logger.info(
            "privacy ledger %s keeps its noise multiplier %s (new plan: %s)",
            path,
            stored.noise_multiplier,
            wanted.noise_multiplier,
        )
    if stored.target_epsilon != wanted.target_epsilon:
        # A client with a ledger plans with its stored noise multiplier
        # (`PrivateRound.open`), so this is the only notice of it.
        logger.warning(
            "privacy ledger %s: the target epsilon changes from %s to %s; the "
            "noise multiplier stays %s, so the new target caps what is spent "
            "but the noise is not recalibrated for it",
            path,
            stored.target_epsilon,
            wanted.target_epsilon,
            stored.noise_multiplier,
        )
    if stored.sample_rate != wanted.sample_rate:
        logger.warning(
            "privacy ledger %s: sample rate changes from %s to %s",
            path,
            stored.sample_rate,
            wanted.sample_rate,
        )


def _new_budget(path: Path) -> str:
    """How the budget in `path` may start over, as advice after "or"."""
    if path.name == CENTRAL_LEDGER_FILE:
        # A run's client-level ledger is never reset: only a new run starts over.
        return "start a new run in a folder of its own for a new budget"
    if path.name == LEDGER_FILE:
        return (
            f"archive it with `fedmodel ledger reset --state-dir {path.parent} "
            "--yes` to start a new budget"
        )
    return f"move {path} aside to start a new budget"
