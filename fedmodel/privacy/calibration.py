"""Noise calibration and the one place epsilon is computed.

Every epsilon fedmodel reports comes from `epsilon_for`: what a fresh Opacus
accountant gives for an explicit (noise multiplier, sample rate, steps)
history, evaluated and remembered per process by `accountants.py`.
Calibration searches the noise multiplier with that same accountant, so the
planned budget and the charged budget agree to the last digit. A client's plan
(its delta, steps and rounds) is sized in `client_plan.py`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from fedmodel.config.modes import ACCOUNTANT_NAMES
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import (
    PRV_MAX_STEPS,
    HistoryEntry,
    composed_epsilon,
    evaluated_epsilon,
    prv_takes,
    rdp_epsilon_floor,
)
from fedmodel.privacy.noise_search import NoNoiseSuffices, smallest_noise

ACCOUNTANTS = ACCOUNTANT_NAMES


@functools.lru_cache(maxsize=256)
def calibrate_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
) -> float:
    """Return the smallest noise multiplier meeting the target, within tolerance.

    The tolerance is `noise_search`'s: 0.01 epsilon, or 1% of a target below
    1. The result is checked with `epsilon_for`: it never spends more than
    `target_epsilon` after `steps` steps. Results are remembered per process:
    a client plans every round, and PRV takes seconds per calibration.
    """
    _check_accountant(accountant)
    if not 0.0 < target_epsilon < math.inf:
        raise FedmodelError(
            f"target epsilon {target_epsilon!r} must be a positive number: set "
            "privacy.target_epsilon"
        )
    _check_step_args(delta=delta, sample_rate=sample_rate, steps=steps)
    if not prv_takes(accountant, steps):
        # Each plan is refused there first (`check_prv_steps`); the epsilon
        # stated past the limit is RDP's, which a PRV search must not meet.
        raise ValueError(f"PRV calibrates at most {PRV_MAX_STEPS} steps, not {steps}")
    unreachable = FedmodelError(
        f"target epsilon {target_epsilon:g} cannot be reached with delta "
        f"{delta:g}, sample rate {sample_rate:g} and {steps} steps: raise "
        "privacy.target_epsilon, or lower num_rounds, finetune.local_epochs or "
        "finetune.batch_size"
    )
    if accountant == "rdp" and target_epsilon <= rdp_epsilon_floor(delta):
        # RDP over Opacus' fixed orders cannot certify less than this floor at
        # any noise level; the search would go up to MAX_NOISE before saying so.
        raise unreachable

    failures: list[FedmodelError] = []

    def spent_at(sigma: float) -> float:
        # Noise the accountant cannot evaluate (PRV, at very little) is too little.
        try:
            return composed_epsilon(((sigma, sample_rate, steps),), delta, accountant)
        except FedmodelError as exc:
            failures.append(exc)
            return math.inf

    try:
        sigma = smallest_noise(spent_at, target_epsilon)
    except (NoNoiseSuffices, ArithmeticError) as exc:
        failed = failures and not getattr(exc, "evaluated", False)
        raise (failures[-1] if failed else unreachable) from exc
    spent = epsilon_for(
        [(sigma, sample_rate, steps)], delta=delta, accountant=accountant
    )
    if not spent <= target_epsilon:
        raise unreachable
    return sigma


def epsilon_for(
    history: Sequence[HistoryEntry], *, delta: float, accountant: str
) -> float:
    """Return the epsilon spent by `history`, as a fresh Opacus accountant has it.

    Entries with the same noise multiplier and sample rate are composed as one
    (composition is order-free), so a budget charged round by round reads
    exactly as the single entry calibration planned with. Zero noise means no
    privacy: infinity. Never returns NaN. Past PRV_MAX_STEPS steps, PRV's
    epsilon is RDP's (`accountants.stating_accountant`).
    """
    _check_accountant(accountant)
    merged = _merged(history, delta=delta)
    if merged is None:
        return math.inf
    return composed_epsilon(merged, delta, accountant) if merged else 0.0


def prv_epsilon_for(history: Sequence[HistoryEntry], *, delta: float) -> float:
    """PRV's own epsilon of `history`, past PRV_MAX_STEPS steps too.

    What fedmodel stated for any history before it stated RDP's past that
    limit, so what a ledger charged then may hold (`ledger_check`).
    """
    merged = _merged(history, delta=delta)
    if merged is None:
        return math.inf
    return evaluated_epsilon(merged, delta, "prv") if merged else 0.0


def _merged(
    history: Sequence[HistoryEntry], *, delta: float
) -> tuple[HistoryEntry, ...] | None:
    """`history`'s steps summed per (noise, rate), checked; None: zero noise."""
    merged: dict[tuple[float, float], int] = {}
    for entry in history:
        sigma, sample_rate, steps = entry
        _check_step_args(delta=delta, sample_rate=sample_rate, steps=steps)
        if not 0.0 <= sigma < math.inf:
            raise ValueError(f"noise multiplier must be >= 0, got {entry!r}")
        if sigma == 0.0:
            return None
        key = (float(sigma), float(sample_rate))
        merged[key] = merged.get(key, 0) + steps
    return tuple((sigma, q, steps) for (sigma, q), steps in merged.items())


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise FedmodelError(
            f"privacy accountant {accountant!r} is not supported: set "
            f"privacy.accountant to one of {list(ACCOUNTANTS)}"
        )


def _check_step_args(*, delta: float, sample_rate: float, steps: int) -> None:
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample rate must be in (0, 1], got {sample_rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
