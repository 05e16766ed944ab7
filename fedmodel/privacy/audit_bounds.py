"""Turning a membership attack's scores into an empirical epsilon lower bound.

(epsilon, delta)-DP bounds every test of "record in" against "record out":
TPR <= e^epsilon * FPR + delta, and likewise TNR <= e^epsilon * FNR + delta.
With Clopper-Pearson intervals on the observed rates, a test that separates
members from non-members proves, at the stated confidence, that epsilon is at
least log((TPR_low - delta) / FPR_high) (or the complementary form). The
threshold is chosen on one half of the records and the bound computed on the
other, so choosing it does not inflate the confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

MAX_THRESHOLDS = 400


@dataclass(frozen=True)
class EpsilonBound:
    """An empirical lower bound on epsilon and the test that gives it."""

    epsilon: float
    confidence: float
    delta: float
    threshold: float
    # "high": a score >= threshold says member; "low": a score < threshold does.
    direction: str
    true_positive_rate: float
    false_positive_rate: float
    members: int
    non_members: int


def clopper_pearson(
    successes: int, trials: int, *, confidence: float
) -> tuple[float, float]:
    """Exact two-sided binomial interval for a success rate."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials >= 1: {successes}/{trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    low = (
        0.0
        if successes == 0
        else beta.ppf(alpha / 2, successes, trials - successes + 1)
    )
    high = (
        1.0
        if successes == trials
        else beta.ppf(1 - alpha / 2, successes + 1, trials - successes)
    )
    return float(low), float(high)


def bound_at(
    members: np.ndarray,
    non_members: np.ndarray,
    *,
    threshold: float,
    direction: str,
    delta: float,
    confidence: float,
) -> EpsilonBound:
    """The lower bound one threshold test proves, at `confidence` overall.

    TPR gets a lower and FPR an upper Clopper-Pearson end, each from a
    two-sided interval at `confidence` (so each errs with probability at most
    (1 - confidence) / 2, and the pair with at most 1 - confidence). Both forms
    of the DP inequality are tried: the test itself and its complement
    (TNR <= e^eps FNR + delta).
    """
    said_member = members >= threshold if direction == "high" else members < threshold
    alarmed = (
        non_members >= threshold if direction == "high" else non_members < threshold
    )
    hits = int(said_member.sum())
    false_alarms = int(alarmed.sum())
    tpr_low, _ = clopper_pearson(hits, len(members), confidence=confidence)
    _, fpr_high = clopper_pearson(false_alarms, len(non_members), confidence=confidence)
    epsilon = max(
        0.0,
        _log_ratio(tpr_low - delta, fpr_high),
        _log_ratio(1 - fpr_high - delta, 1 - tpr_low),
    )
    return EpsilonBound(
        epsilon=epsilon,
        confidence=confidence,
        delta=delta,
        threshold=float(threshold),
        direction=direction,
        true_positive_rate=hits / len(members),
        false_positive_rate=false_alarms / len(non_members),
        members=len(members),
        non_members=len(non_members),
    )


def _log_ratio(numerator: float, denominator: float) -> float:
    if numerator <= 0:
        return 0.0
    if denominator <= 0:
        return math.inf
    return math.log(numerator / denominator)


def best_threshold(
    members: np.ndarray, non_members: np.ndarray, *, delta: float, confidence: float
) -> tuple[float, str]:
    """The (threshold, direction) whose test proves the largest bound here."""
    best = (-1.0, 0.0, "high")
    scores = np.concatenate([members, non_members])
    # Every distinct score is a candidate; past a few hundred, quantiles suffice.
    candidates = np.unique(np.quantile(scores, np.linspace(0, 1, MAX_THRESHOLDS)))
    if len(np.unique(scores)) <= MAX_THRESHOLDS:
        candidates = np.unique(scores)
    for threshold in candidates:
        for direction in ("high", "low"):
            found = bound_at(
                members,
                non_members,
                threshold=float(threshold),
                direction=direction,
                delta=delta,
                confidence=confidence,
            ).epsilon
            if found > best[0]:
                best = (found, float(threshold), direction)
    return best[1], best[2]


def audit_bound(
    members: np.ndarray,
    non_members: np.ndarray,
    *,
    delta: float,
    confidence: float,
    seed: int,
) -> EpsilonBound:
    """Choose a threshold on a random half of each set; bound on the other half."""
    if len(members) < 2 or len(non_members) < 2:
        raise ValueError(
            f"need at least 2 members and 2 non-members, got {len(members)} and "
            f"{len(non_members)}"
        )
    rng = np.random.default_rng(seed)
    members = rng.permutation(members)
    non_members = rng.permutation(non_members)
    half_m, half_n = len(members) // 2, len(non_members) // 2
    threshold, direction = best_threshold(
        members[:half_m], non_members[:half_n], delta=delta, confidence=confidence
    )
    return bound_at(
        members[half_m:],
        non_members[half_n:],
        threshold=threshold,
        direction=direction,
        delta=delta,
        confidence=confidence,
    )
