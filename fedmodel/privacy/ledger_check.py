"""A stored ledger's history checked against the epsilon its last charge recorded.

Every epsilon fedmodel charges from or reports is computed afresh from the
history. The epsilon each charge stored beside it is the witness that the
history was not edited since: a noise multiplier raised or a sample rate
lowered by hand spends less on recomputation than the charge recorded, and
a stored epsilon lowered by hand is less than its history spends. Either way
the file no longer says what was spent, and it is refused.

Only the last round's epsilon is checked, against one evaluation of the whole
history, which the opened ledger keeps as its epsilon. Every entry counts in
that total, so an edit of any one entry moves it. Checking every round's
stored epsilon would take an accountant call per round, which under PRV is
seconds for a ledger of 30 rounds (benchmarks/ledger_open.py), in every round
of a deployed site; an earlier round's stored epsilon is read by nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import stating_accountant
from fedmodel.privacy.calibration import epsilon_for, prv_epsilon_for
from fedmodel.privacy.ledger_record import (
    STORED_EPSILON_TOLERANCE,
    LedgerRecord,
    unusable_ledger,
)


def checked_epsilon(path: Path, record: LedgerRecord) -> float:
    """The epsilon `record`'s history spends, refused unless its last charge agrees.

    A stored epsilon above the recomputed one is refused too: it is what a
    history edited to spend less leaves behind, and the two cannot be told apart.
    """
    if not record.history:
        return 0.0
    try:
        spent = epsilon_for(
            record.history, delta=record.delta, accountant=record.accountant
        )
    except (FedmodelError, ValueError) as exc:
        raise unusable_ledger(path, f"its history cannot be evaluated ({exc})") from exc
    last = record.rounds[-1]
    if not _agrees(last.epsilon, spent) and not _prv_past_its_limit(path, record):
        raise unusable_ledger(
            path,
            f"round {last.round} (entry {len(record.rounds)}) recorded epsilon "
            f"{last.epsilon:.8g} when it was charged, but the history now spends "
            f"{spent:.8g} (delta {record.delta:g}, "
            f"{stating_accountant(record.accountant, record.steps)}): the file "
            "was edited since (or written with another Opacus version)",
        )
    return spent


def _agrees(stored: float, recomputed: float) -> bool:
    return math.isclose(stored, recomputed, rel_tol=STORED_EPSILON_TOLERANCE)


def _prv_past_its_limit(path: Path, record: LedgerRecord) -> bool:
    """Whether the last charge stored PRV's own epsilon where RDP's is stated now.

    fedmodel stated PRV's epsilon past PRV_MAX_STEPS before it stated RDP's
    there (`accountants.stating_accountant`), so a site's ledger charged then
    holds PRV's figure: it is checked with PRV, once more, and the ledger
    spends RDP's from now on, which is larger. Its next charge stores RDP's.
    """
    if stating_accountant(record.accountant, record.steps) == record.accountant:
        return False
    try:
        prv = prv_epsilon_for(record.history, delta=record.delta)
    except (FedmodelError, ValueError) as exc:
        raise unusable_ledger(path, f"its history cannot be evaluated ({exc})") from exc
    return _agrees(record.rounds[-1].epsilon, prv)
