"""Noise calibration and the one place epsilon is computed.

Every epsilon fedmodel reports comes from `epsilon_for`: what a fresh Opacus
accountant gives for an explicit (noise multiplier, sample rate, steps)
history, evaluated and remembered per process by `accountants.py`.
Calibration searches the noise multiplier with that same accountant, so the
planned budget and the charged budget agree to the last digit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from fedmodel.config import RunSettings
from fedmodel.config.delta_rule import default_delta
from fedmodel.config.modes import ACCOUNTANT_NAMES
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import (
    HistoryEntry,
    check_prv_steps,
    composed_epsilon,
    rdp_epsilon_floor,
)
from fedmodel.privacy.noise_search import NoNoiseSuffices, smallest_noise
from fedmodel.privacy.sampling import poisson_steps_per_epoch, sample_rate_for

ACCOUNTANTS = ACCOUNTANT_NAMES


@dataclass(frozen=True)
class PrivacyPlan:
    """Noise calibrated so `planned_rounds` rounds spend at most `target_epsilon`."""

    target_epsilon: float
    delta: float
    sample_rate: float
    steps_per_round: int
    planned_rounds: int
    noise_multiplier: float
    accountant: str


def choose_delta(
    num_records: int, requested: float | None, *, client_id: str | None = None
) -> float:
    """Return the delta for a client holding `num_records` training records.

    `None` means 1 / (10 n). A delta of 1/n or more would allow releasing a
    whole record outright, so it is refused rather than silently lowered.
    """
    who = f"client {client_id!r}" if client_id is not None else "this client"
    if num_records < 1:
        raise FedmodelError(
            f"{who} has {num_records} training records: DP-SGD needs at least one; "
            "check the client's data partition"
        )
    if requested is None:
        return default_delta(num_records)
    if not 0.0 < requested < 1.0 / num_records:
        raise FedmodelError(
            f"delta {requested:g} is not below 1/n = 1/{num_records} for {who}: "
            f"set privacy.target_delta below {1.0 / num_records:g} "
            "(or null for 1/(10 n))"
        )
    return requested


@functools.lru_cache(maxsize=256)
def calibrate_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
) -> float:
    """Return the smallest noise multiplier meeting the target (within 0.01 epsilon).

    The result is checked with `epsilon_for`: it never spends more than
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


def plan_privacy(
    *,
    target_epsilon: float,
    delta: float | None,
    num_records: int,
    batch_size: int,
    local_epochs: int,
    planned_rounds: int,
    accountant: str,
    client_id: str | None = None,
    noise_multiplier: float | None = None,
) -> PrivacyPlan:
    """Calibrate noise for `planned_rounds` rounds of `local_epochs` epochs each.

    `delta` goes through `choose_delta` (None: 1 / (10 n)). A given
    `noise_multiplier` (a stored ledger's, which the ledger keeps) is used
    as it is, without the search.
    """
    chosen_delta = choose_delta(num_records, delta, client_id=client_id)
    if local_epochs < 1 or planned_rounds < 1:
        raise ValueError(
            f"local_epochs and planned_rounds must be >= 1, got {local_epochs} "
            f"and {planned_rounds}"
        )
    sample_rate = sample_rate_for(num_records, batch_size)
    steps_per_round = _checked_round_steps(
        accountant=accountant,
        num_records=num_records,
        batch_size=batch_size,
        local_epochs=local_epochs,
        planned_rounds=planned_rounds,
        client_id=client_id,
    )
    sigma = noise_multiplier
    if sigma is None:
        sigma = calibrate_noise(
            target_epsilon=target_epsilon,
            delta=chosen_delta,
            sample_rate=sample_rate,
            steps=steps_per_round * planned_rounds,
            accountant=accountant,
        )
    return PrivacyPlan(
        target_epsilon=target_epsilon,
        delta=chosen_delta,
        sample_rate=sample_rate,
        steps_per_round=steps_per_round,
        planned_rounds=planned_rounds,
        noise_multiplier=sigma,
        accountant=accountant,
    )


def planned_rounds(settings: RunSettings) -> int:
    """Rounds a client's noise covers: teacher rounds plus federated student rounds."""
    return settings.num_rounds + settings.distill.client_rounds


def plan_client(
    settings: RunSettings,
    *,
    num_records: int,
    client_id: str,
    noise_multiplier: float | None = None,
) -> PrivacyPlan:
    """The plan a client holding `num_records` training records runs under.

    The one place a client's planned rounds and steps are decided: the client's
    ledger opens with it and `fedmodel privacy-plan` prints it. A client whose
    ledger already exists passes the ledger's noise multiplier, which the
    ledger keeps whatever a new search would find.
    """
    privacy = settings.privacy
    assert privacy.target_epsilon is not None  # the config checks require it
    return plan_privacy(
        target_epsilon=privacy.target_epsilon,
        delta=privacy.target_delta,
        num_records=num_records,
        batch_size=settings.finetune.batch_size,
        local_epochs=settings.finetune.local_epochs,
        planned_rounds=planned_rounds(settings),
        accountant=privacy.accountant,
        client_id=client_id,
        noise_multiplier=noise_multiplier,
    )


def check_client_steps(
    settings: RunSettings, *, num_records: int, client_id: str
) -> None:
    """Refuse a client's plan of more steps than its accountant may take.

    What `plan_client` checks first, without calibrating: the server of a
    simulation asks it of every client before round 1.
    """
    _checked_round_steps(
        accountant=settings.privacy.accountant,
        num_records=num_records,
        batch_size=settings.finetune.batch_size,
        local_epochs=settings.finetune.local_epochs,
        planned_rounds=planned_rounds(settings),
        client_id=client_id,
    )


def _checked_round_steps(
    *,
    accountant: str,
    num_records: int,
    batch_size: int,
    local_epochs: int,
    planned_rounds: int,
    client_id: str | None,
) -> int:
    """Steps a client's round takes (the one count), refusing a plan past the limit."""
    per_epoch = poisson_steps_per_epoch(num_records, batch_size)
    who = f"client {client_id}" if client_id is not None else "this client"
    check_prv_steps(
        accountant,
        planned_rounds * local_epochs * per_epoch,
        counted=f"{who}: {planned_rounds} rounds (num_rounds, plus distill.rounds "
        f"under distill=federated) x {local_epochs} local epochs "
        f"(finetune.local_epochs) x {per_epoch} steps an epoch ({num_records} "
        f"records at finetune.batch_size={batch_size})",
        fewer="Lower num_rounds or finetune.local_epochs, raise finetune.batch_size",
    )
    return local_epochs * per_epoch


def epsilon_for(
    history: Sequence[HistoryEntry], *, delta: float, accountant: str
) -> float:
    """Return the epsilon spent by `history`, as a fresh Opacus accountant has it.

    Entries with the same noise multiplier and sample rate are composed as one
    (composition is order-free), so a budget charged round by round reads
    exactly as the single entry calibration planned with. Zero noise means no
    privacy: infinity. Never returns NaN.
    """
    _check_accountant(accountant)
    merged: dict[tuple[float, float], int] = {}
    for entry in history:
        sigma, sample_rate, steps = entry
        _check_step_args(delta=delta, sample_rate=sample_rate, steps=steps)
        if not 0.0 <= sigma < math.inf:
            raise ValueError(f"noise multiplier must be >= 0, got {entry!r}")
        if sigma == 0.0:
            return math.inf
        key = (float(sigma), float(sample_rate))
        merged[key] = merged.get(key, 0) + steps
    if not merged:
        return 0.0
    return composed_epsilon(
        tuple((sigma, q, steps) for (sigma, q), steps in merged.items()),
        delta,
        accountant,
    )


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
