"""Opacus' accountants, evaluated: the epsilon of a merged (noise, rate, steps) history.

`fedmodel.privacy.calibration.epsilon_for` merges and checks a history, then
asks `composed_epsilon`, which a process remembers: a client asks the same
question every round, and PRV takes a fraction of a second to seconds.

Every evaluation runs with BLAS on one thread. PRV takes a dot product over
its whole discretised domain, and a multithreaded BLAS sums it in chunks
whose order depends on the thread count: `fedmodel privacy-plan` in a shell
(all cores) and a simulated client (one thread) then calibrated noise
multipliers that differed in the last bits, so the plan shown was not
exactly the plan run.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.analysis.prv import Domain
from opacus.accountants.prv import PRVAccountant
from opacus.accountants.rdp import RDPAccountant
from threadpoolctl import threadpool_limits

from fedmodel.errors import FedmodelError

HistoryEntry = tuple[float, float, int]
# Opacus' default error allowance for PRV's epsilon.
PRV_EPSILON_ERROR = 0.01
# PRV discretises the privacy loss on a grid that grows with the steps: one
# calibration at 1e5 steps peaked at 1.4 to 1.9 GB and took 4 to 25 s
# (docs/privacy.md), and 2.4e9 steps grew until the system killed it. Plans
# over this are refused before PRV runs; RDP's memory does not grow.
PRV_MAX_STEPS = 100_000


@functools.lru_cache(maxsize=1024)
def composed_epsilon(
    history: tuple[HistoryEntry, ...], delta: float, accountant: str
) -> float:
    """Epsilon of a merged history, remembered per process (it only depends on it).

    It is `stating_accountant`'s: PRV's past PRV_MAX_STEPS steps is RDP's.
    """
    steps = sum(entry[2] for entry in history)
    return evaluated_epsilon(history, delta, stating_accountant(accountant, steps))


def evaluated_epsilon(
    history: tuple[HistoryEntry, ...], delta: float, accountant: str
) -> float:
    """`accountant`'s own epsilon of a merged history, however many its steps."""
    try:
        with _quiet_numerics(), threadpool_limits(limits=1, user_api="blas"):
            epsilon = _evaluated(history, delta, accountant)
    except (RuntimeError, ValueError, ArithmeticError) as exc:
        if "small values of delta" in str(exc):
            raise _delta_too_small(accountant, delta, exc) from exc
        raise accountant_failed(accountant, exc) from exc
    except MemoryError as exc:
        # PRV's grid grows with the steps: a huge plan that meets a memory
        # limit ended in numpy's traceback, naming no key.
        steps = sum(entry[2] for entry in history)
        raise FedmodelError(
            f"the {accountant} privacy accountant ran out of memory on {steps} "
            f"steps ({exc}): lower num_rounds or finetune.local_epochs, or set "
            "privacy.accountant=rdp, whose cost does not grow with the steps"
        ) from exc
    if math.isnan(epsilon) or epsilon < 0.0:
        raise accountant_failed(
            accountant, f"epsilon {epsilon} for {list(history)} at delta {delta:g}"
        )
    return epsilon


def _evaluated(
    history: tuple[HistoryEntry, ...], delta: float, accountant: str
) -> float:
    if accountant == "rdp":
        return rdp_epsilon(history, delta)
    engine = _PRVAccountant()  # the only other one (ACCOUNTANT_NAMES)
    engine.history = list(history)
    return float(
        engine.get_epsilon(delta=delta, **_prv_options(history, delta, accountant))
    )


def rdp_epsilon(history: tuple[HistoryEntry, ...], delta: float) -> float:
    """RDP's epsilon of `history`, the very float Opacus' RDPAccountant returns.

    Opacus computes one step's RDP at each order, then multiplies it by the
    steps; its orders below 12 are fractional, whose RDP takes a Python loop
    of a few milliseconds each (0.07 s a history). `_rdp_of_one_step`
    remembers that vector per (noise, rate): the per-round epsilons of a
    plan, and PRV's error allowance, ask for the same pair again and again.
    """
    rdp = sum([_rdp_of_one_step(sigma, rate) * steps for sigma, rate, steps in history])
    epsilon, _ = rdp_analysis.get_privacy_spent(
        orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta
    )
    return float(epsilon)


@functools.lru_cache(maxsize=4096)
def _rdp_of_one_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    one_step = np.asarray(
        rdp_analysis.compute_rdp(
            q=sample_rate,
            noise_multiplier=noise_multiplier,
            steps=1,
            orders=RDPAccountant.DEFAULT_ALPHAS,
        )
    )
    one_step.flags.writeable = False  # shared by every caller
    return one_step


class _PRVAccountant(PRVAccountant):
    """Opacus' PRV accountant, its domain sized from the remembered one-step RDP.

    PRV truncates the privacy loss to a domain whose half-width comes from
    RDP epsilons of the history (Opacus' `compute_safe_domain_size`, after
    Gopi et al.'s remark 5.6), each from a fresh RDPAccountant: 10 of the 18 s
    of a default `fedmodel privacy-plan`. This is that bound, term by term,
    with `rdp_epsilon` in place of the fresh accountant, which returns the
    same floats; a test checks both accountants give the same epsilon.
    """

    def _get_domain(
        self,
        prvs: list[object],
        num_self_compositions: list[int],
        eps_error: float,
        delta_error: float,
    ) -> Domain:
        total = sum(num_self_compositions)
        history = tuple(self.history)
        half_width = rdp_epsilon(history, delta_error / 4)
        for noise_multiplier, sample_rate, _ in history:
            one_step = ((noise_multiplier, sample_rate, 1),)
            half_width = max(
                half_width, rdp_epsilon(one_step, delta_error / (8 * total))
            )
        half_width = max(half_width, eps_error) + 3
        mesh = eps_error / np.sqrt(total * np.log(12 / delta_error) / 2)
        return Domain.create_aligned(-half_width, half_width, mesh)


def prv_takes(accountant: str, steps: int) -> bool:
    """Whether `accountant` may evaluate `steps` steps (PRV: up to PRV_MAX_STEPS)."""
    return accountant != "prv" or steps <= PRV_MAX_STEPS


def stating_accountant(accountant: str, steps: int) -> str:
    """The accountant whose epsilon fedmodel states for a history of `steps` steps.

    `accountant`, but RDP for PRV past PRV_MAX_STEPS. A plan is refused there
    (`check_prv_steps`), but a site's ledger composes every federation's
    steps, which no plan bounds: at 229,200 steps in 9 entries one PRV
    epsilon took 35 s and 1.8 GB, and a site evaluates its ledger twice a
    round (benchmarks/site_ledger_growth.py). RDP's epsilon is also an upper
    bound, larger than PRV's on those histories (6%), so a cap still holds;
    the figure only depends on the history, so a stored charge is checked
    against the same rule that made it.
    """
    return accountant if prv_takes(accountant, steps) else "rdp"


def stated_by_rdp(accountant: str, steps: int) -> str:
    """How an epsilon of `steps` steps says it is RDP's under PRV ("" where not)."""
    if stating_accountant(accountant, steps) == accountant:
        return ""
    return (
        f" (RDP's bound, a looser one: its {steps} steps are past the "
        f"{PRV_MAX_STEPS} the {accountant} privacy accountant evaluates)"
    )


def check_prv_steps(accountant: str, steps: int, *, counted: str, fewer: str) -> None:
    """Refuse a plan of more steps than PRV may take, before PRV runs.

    `counted` says what makes up the steps, `fewer` which keys lower them.
    """
    if prv_takes(accountant, steps):
        return
    raise FedmodelError(
        f"this plan has {steps} steps ({counted}), more than the {PRV_MAX_STEPS} "
        "the prv privacy accountant is allowed: its memory and time grow with "
        f"the steps. {fewer}, or set privacy.accountant=rdp, a looser but valid "
        "bound whose memory does not grow with the steps"
    )


def _prv_options(
    history: tuple[HistoryEntry, ...], delta: float, accountant: str
) -> dict[str, float]:
    """PRV's error allowance: 0.01 epsilon, or 0.1% of RDP's epsilon if larger.

    PRV's cost grows with epsilon over its allowed error (a weak budget of
    epsilon 600 took 6 s a call at 0.01 and 0.1 s at 0.6). The epsilon it
    returns is the top of its error interval either way, so still a bound.
    """
    if accountant != "prv":
        return {}
    scale = rdp_epsilon(history, delta) / 1000
    # Noise so small that RDP certifies nothing: keep Opacus' allowance.
    return {"eps_error": max(PRV_EPSILON_ERROR, scale if math.isfinite(scale) else 0.0)}


def accountant_failed(accountant: str, problem: object) -> FedmodelError:
    """The error for an accountant that could not evaluate a history."""
    other = "rdp" if accountant == "prv" else "prv"
    return FedmodelError(
        f"the {accountant} privacy accountant failed ({problem}); set "
        f"privacy.accountant={other} or change privacy.target_epsilon"
    )


def _delta_too_small(accountant: str, delta: float, problem: object) -> FedmodelError:
    # PRV's own words ("Increase delta or reduce domain size") name no key.
    return FedmodelError(
        f"the {accountant} privacy accountant cannot evaluate delta {delta:g} "
        f"({problem}): raise privacy.target_delta (now {delta:g}; at a deployed "
        "site, its own --delta), or set privacy.accountant=rdp, which evaluates "
        "any delta"
    )


def rdp_epsilon_floor(delta: float) -> float:
    """The least epsilon RDP over Opacus' orders can certify at `delta`."""
    orders = RDPAccountant.DEFAULT_ALPHAS
    with _quiet_numerics():
        floor, _ = rdp_analysis.get_privacy_spent(
            orders=orders, rdp=[0.0] * len(orders), delta=delta
        )
    return float(floor)


@contextmanager
def _quiet_numerics() -> Iterator[None]:
    # The accountants take log(0) on purpose at the domain edges, and RDP warns
    # when the best order is an extreme one; the bound is still valid.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the")
        yield
