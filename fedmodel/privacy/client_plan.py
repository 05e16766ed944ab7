"""A client's privacy plan: its delta, its steps per round, and the noise for them.

`plan_client` is the one place a client's planned rounds and steps are
decided; the noise multiplier comes from `calibration.calibrate_noise`, the
same accountant every charged epsilon comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmodel.config import RunSettings
from fedmodel.config.delta_rule import below_one_over_n, default_delta
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import check_prv_steps
from fedmodel.privacy.calibration import calibrate_noise
from fedmodel.privacy.sampling import poisson_steps_per_epoch, sample_rate_for


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
    if not below_one_over_n(requested, num_records):
        raise FedmodelError(
            f"delta {requested:g} is not below 1/n = 1/{num_records} for {who}: "
            f"set privacy.target_delta below {1.0 / num_records:g} "
            "(or null for 1/(10 n))"
        )
    return requested


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
