"""Noise calibration and the one place epsilon is computed.

Every epsilon fedmodel reports comes from `epsilon_for`: a fresh Opacus
accountant over an explicit (noise multiplier, sample rate, steps) history.
Calibration searches the noise multiplier with that same accountant, so the
planned budget and the charged budget agree to the last digit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from opacus.accountants import create_accountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.rdp import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from fedmodel.config import RunSettings
from fedmodel.config.modes import ACCOUNTANT_NAMES
from fedmodel.errors import FedmodelError

ACCOUNTANTS = ACCOUNTANT_NAMES
EPSILON_TOLERANCE = 0.01

HistoryEntry = tuple[float, float, int]


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
        return 1.0 / (10 * num_records)
    if not 0.0 < requested < 1.0 / num_records:
        raise FedmodelError(
            f"delta {requested:g} is not below 1/n = 1/{num_records} for {who}: "
            f"set privacy.target_delta below {1.0 / num_records:g} "
            "(or null for 1/(10 n))"
        )
    return requested


def sample_rate_for(num_records: int, batch_size: int) -> float:
    """Return the Poisson sampling rate Opacus uses for a loader of `batch_size`.

    `DPDataLoader.from_data_loader` takes 1 / len(loader), and a loader without
    `drop_last` has ceil(n / batch_size) batches.
    """
    if num_records < 1 or batch_size < 1:
        raise ValueError(
            f"num_records and batch_size must be >= 1, got {num_records} and "
            f"{batch_size}"
        )
    return 1.0 / math.ceil(num_records / batch_size)


def poisson_steps_per_epoch(num_records: int, batch_size: int) -> int:
    """Return how many batches Opacus' Poisson loader yields per epoch.

    Its sampler yields int(1 / sample_rate) batches, which floating point makes
    one fewer than ceil(n / batch_size) for some sizes (93 batches -> 92), so
    the count is taken from the sampler itself.
    """
    sampler = UniformWithReplacementSampler(
        num_samples=num_records, sample_rate=sample_rate_for(num_records, batch_size)
    )
    return len(sampler)


def calibrate_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
) -> float:
    """Return the smallest noise multiplier (within 0.01 epsilon) meeting the target.

    The result is checked with `epsilon_for`: it never spends more than
    `target_epsilon` after `steps` steps.
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
    if accountant == "rdp" and target_epsilon <= _rdp_epsilon_floor(delta):
        # RDP over Opacus' fixed orders cannot certify less than this floor at
        # any noise level; Opacus would search up to sigma 1e6 before saying so.
        raise unreachable
    try:
        with _quiet_numerics():
            sigma = float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=accountant,
                    epsilon_tolerance=EPSILON_TOLERANCE,
                )
            )
    except (ValueError, ArithmeticError) as exc:
        raise unreachable from exc
    except RuntimeError as exc:
        raise _accountant_failed(accountant, exc) from exc
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
) -> PrivacyPlan:
    """Calibrate noise for `planned_rounds` rounds of `local_epochs` epochs each.

    `delta` goes through `choose_delta` (None: 1 / (10 n)).
    """
    chosen_delta = choose_delta(num_records, delta, client_id=client_id)
    if local_epochs < 1 or planned_rounds < 1:
        raise ValueError(
            f"local_epochs and planned_rounds must be >= 1, got {local_epochs} "
            f"and {planned_rounds}"
        )
    sample_rate = sample_rate_for(num_records, batch_size)
    steps_per_round = local_epochs * poisson_steps_per_epoch(num_records, batch_size)
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
    settings: RunSettings, *, num_records: int, client_id: str
) -> PrivacyPlan:
    """The plan a client holding `num_records` training records runs under.

    The one place a client's planned rounds and steps are decided: the client's
    ledger opens with it and `fedmodel privacy-plan` prints it.
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
    )


def epsilon_for(
    history: Sequence[HistoryEntry], *, delta: float, accountant: str
) -> float:
    """Return the epsilon spent by `history`, from a fresh Opacus accountant.

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
    engine = create_accountant(mechanism=accountant)
    engine.history = [(sigma, q, steps) for (sigma, q), steps in merged.items()]
    try:
        with _quiet_numerics():
            epsilon = float(engine.get_epsilon(delta=delta))
    except (RuntimeError, ValueError, ArithmeticError) as exc:
        raise _accountant_failed(accountant, exc) from exc
    if math.isnan(epsilon) or epsilon < 0.0:
        raise _accountant_failed(
            accountant, f"epsilon {epsilon} for {engine.history} at delta {delta:g}"
        )
    return epsilon


def _accountant_failed(accountant: str, problem: object) -> FedmodelError:
    other = "rdp" if accountant == "prv" else "prv"
    return FedmodelError(
        f"the {accountant} privacy accountant failed ({problem}); set "
        f"privacy.accountant={other} or change privacy.target_epsilon"
    )


def _rdp_epsilon_floor(delta: float) -> float:
    orders = RDPAccountant.DEFAULT_ALPHAS
    with _quiet_numerics():
        floor, _ = rdp_analysis.get_privacy_spent(
            orders=orders, rdp=[0.0] * len(orders), delta=delta
        )
    return float(floor)


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


@contextmanager
def _quiet_numerics() -> Iterator[None]:
    # The accountants take log(0) on purpose at the domain edges, and RDP warns
    # when the best order is an extreme one; the bound is still valid.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the")
        yield
