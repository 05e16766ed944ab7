"""Clopper-Pearson intervals, the epsilon lower bound, and canary exposure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedmodel.privacy.audit_bounds import (
    EpsilonBound,
    audit_bound,
    bound_at,
    clopper_pearson,
)
from fedmodel.privacy.membership_attack import AttackResult, attack, exposure
from fedmodel.research.audit import AuditReport, render_audit


def test_clopper_pearson_known_values() -> None:
    # 0 of 10: the exact 95% upper end is 1 - 0.025 ** (1 / 10).
    low, high = clopper_pearson(0, 10, confidence=0.95)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 10))
    low, high = clopper_pearson(10, 10, confidence=0.95)
    assert low == pytest.approx(0.025 ** (1 / 10)) and high == 1.0
    low, high = clopper_pearson(50, 100, confidence=0.95)
    assert low == pytest.approx(0.3983, abs=1e-4)
    assert high == pytest.approx(0.6017, abs=1e-4)


def test_separable_scores_give_the_bound_the_sample_allows() -> None:
    members, non_members = np.ones(1000), np.zeros(1000)
    bound = bound_at(
        members,
        non_members,
        threshold=0.5,
        direction="high",
        delta=0.0,
        confidence=0.95,
    )
    tpr_low = 0.025 ** (1 / 1000)
    fpr_high = 1 - 0.025 ** (1 / 1000)
    assert bound.epsilon == pytest.approx(math.log(tpr_low / fpr_high))
    assert bound.true_positive_rate == 1.0 and bound.false_positive_rate == 0.0


def test_delta_lowers_the_bound() -> None:
    members = np.r_[np.ones(800), np.zeros(200)]
    non_members = np.r_[np.ones(100), np.zeros(900)]
    kwargs = {"threshold": 0.5, "direction": "high", "confidence": 0.95}
    loose = bound_at(members, non_members, delta=0.0, **kwargs).epsilon
    tight = bound_at(members, non_members, delta=0.1, **kwargs).epsilon
    assert 0 < tight < loose


def test_same_distribution_rarely_proves_anything() -> None:
    rng = np.random.default_rng(0)
    bounds = [
        audit_bound(
            rng.normal(size=500),
            rng.normal(size=500),
            delta=0.0,
            confidence=0.95,
            seed=seed,
        ).epsilon
        for seed in range(20)
    ]
    # At 95% confidence, at most a few of 20 null audits may find any epsilon.
    assert sum(b > 0 for b in bounds) <= 3
    assert max(bounds) < 0.5


def test_attack_auc_and_exposure() -> None:
    result = attack(
        np.full(50, 0.1), np.full(50, 2.0), delta=0.0, confidence=0.95, seed=0
    )
    assert result.auc == 1.0 and result.bound.epsilon > 1.0
    # A canary with a lower loss than all 7 references has the top exposure, 3 bits.
    exposures = exposure(np.array([0.0, 10.0]), np.arange(1.0, 8.0))
    assert exposures[0] == pytest.approx(3.0)
    assert exposures[1] == pytest.approx(0.0)


def test_too_few_records_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        audit_bound(np.ones(1), np.zeros(5), delta=0.0, confidence=0.95, seed=0)


def test_the_audit_states_the_claimed_epsilon_up_and_its_bound_down() -> None:
    # The run's statement, 7.9955, was shown as 7.995: less than it spent.
    # The bound the attack proved, 2.49586 (the non-private run of
    # docs/privacy-research.md's power block), was shown as 2.496: more.
    bound = EpsilonBound(
        epsilon=2.4958621980135605,
        confidence=0.95,
        delta=1e-5,
        threshold=0.0,
        direction="high",
        true_positive_rate=0.5,
        false_positive_rate=0.4,
        members=10,
        non_members=10,
    )
    records = AttackResult(
        auc=0.5, bound=bound, member_loss_mean=1.0, non_member_loss_mean=1.0
    )
    report = AuditReport(
        run_dir="run",
        client=0,
        privacy_level="record",
        claimed_epsilon=7.99501,
        delta=1e-5,
        records=records,
    )
    said = render_audit(report)
    assert "claimed: record-level epsilon 7.996 at delta" in said
    assert "| epsilon >= 2.495 at 95% confidence (TPR 0.500, FPR 0.400)" in said
