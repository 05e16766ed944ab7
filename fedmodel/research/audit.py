"""`fedmodel audit RUN_DIR`: a membership-inference audit of a run's final model.

The attack scores each record by the final model's loss on it (a member was
trained on, so its loss tends to be lower). Members are records of one client's
training split; non-members are the same client's held-out validation split
(same partition, never trained on). Both are rebuilt from the run's
resolved_config.yaml with the same data and partition code the run used. With
`audit.canaries=k` in the run, the k canaries planted in that client are
compared with canaries from the same generator that were never planted, and
their exposure is measured.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from fedmodel.config.wording import decimals_down, decimals_up, three_digits_up
from fedmodel.data.clients import load_client_data
from fedmodel.privacy.membership_attack import AttackResult, attack, exposure
from fedmodel.research import audit_defaults
from fedmodel.research.audit_records import (
    at_most,
    charged_ledger,
    client_figures,
    example_losses,
    load_teacher,
    members_without,
    rebuilt_canaries,
    require_held_out,
)
from fedmodel.research.finished_run import FinishedRun, load_run
from fedmodel.run.summary import charged_delta, charged_epsilon

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditReport:
    """What `fedmodel audit` found for one client of one run."""

    run_dir: str
    client: int
    privacy_level: str | None
    claimed_epsilon: float | None
    delta: float
    records: AttackResult
    canaries: AttackResult | None = None
    canary_exposure_mean: float | None = None
    canary_exposure_max: float | None = None

    @property
    def consistent(self) -> bool:
        """Whether every bound stays at or below the claimed epsilon."""
        claimed = math.inf if self.claimed_epsilon is None else self.claimed_epsilon
        attacks = [self.records] + ([self.canaries] if self.canaries else [])
        return all(attack.bound.epsilon <= claimed for attack in attacks)


def audit_run(
    run_dir: Path,
    *,
    client: int | None = None,
    confidence: float = audit_defaults.CONFIDENCE,
    max_records: int = audit_defaults.MAX_RECORDS,
    seed: int = audit_defaults.SEED,
    run: FinishedRun | None = None,  # load_run(run_dir), where already read
) -> AuditReport:
    """Attack the final model of `run_dir` on one client's records (and canaries)."""
    settings, summary = run or load_run(run_dir)
    client = settings.audit.client if client is None else client
    train, val, _ = load_client_data(settings, client)
    ledger = charged_ledger(run_dir, client, train)
    planted = settings.audit.canaries if client == settings.audit.client else 0
    require_held_out(
        val, client=client, run_dir=run_dir, val_fraction=settings.task.val_fraction
    )
    rng = np.random.default_rng(seed)
    members = at_most(members_without(train, planted), max_records, rng)
    non_members = at_most(val, max_records, rng)
    model, tokenizer = load_teacher(run_dir)
    losses = partial(
        example_losses, model, tokenizer, max_length=settings.task.max_length
    )
    figures = client_figures(summary, client)
    delta = float(charged_delta(figures) or (ledger.delta if ledger else 0.0))
    records = attack(
        losses(members),
        losses(non_members),
        delta=delta,
        confidence=confidence,
        seed=seed,
    )
    report = AuditReport(
        run_dir=str(run_dir),
        client=client,
        privacy_level=(summary.get("privacy_guarantee") or {}).get("level"),
        claimed_epsilon=charged_epsilon(figures),  # as the run states it
        delta=delta,
        records=records,
    )
    if not planted:
        return report
    canaries, reference = rebuilt_canaries(
        settings,
        run_dir=run_dir,
        client=client,
        train=train,
        val=val,
        planted=planted,
        num_labels=model.config.num_labels,
    )
    return _with_canary_attack(
        report,
        canary_losses=losses(canaries),
        reference_losses=losses(reference),
        confidence=confidence,
        seed=seed,
    )


def _with_canary_attack(
    report: AuditReport,
    *,
    canary_losses: np.ndarray,
    reference_losses: np.ndarray,
    confidence: float,
    seed: int,
) -> AuditReport:
    """The report with the planted canaries attacked against unplanted ones."""
    exposures = exposure(canary_losses, reference_losses)
    return replace(
        report,
        canaries=attack(
            canary_losses,
            reference_losses,
            delta=report.delta,
            confidence=confidence,
            seed=seed,
        ),
        canary_exposure_mean=float(exposures.mean()),
        canary_exposure_max=float(exposures.max()),
    )


def render_audit(report: AuditReport) -> str:
    """The audit's findings as a few lines of text."""
    claimed = report.claimed_epsilon
    promise = (
        "claimed: no DP (privacy=off), epsilon unbounded"
        if claimed is None
        else f"claimed: {report.privacy_level}-level epsilon "
        f"{decimals_up(claimed, 3)} at delta {three_digits_up(report.delta)}"
    )
    lines = [f"audit of {report.run_dir}, client {report.client}", promise]
    attacks = [("records", report.records)]
    if report.canaries:
        attacks.append(("canaries", report.canaries))
    for name, result in attacks:
        bound = result.bound
        lines.append(
            f"{name}: {bound.members} members vs {bound.non_members} non-members "
            f"(evaluation half) | AUC {result.auc:.4f} | mean loss "
            f"{result.member_loss_mean:.3f} vs {result.non_member_loss_mean:.3f} | "
            f"epsilon >= {decimals_down(bound.epsilon, 3)} at {bound.confidence:.0%} "
            "confidence "
            f"(TPR {bound.true_positive_rate:.3f}, FPR {bound.false_positive_rate:.3f})"
        )
    if report.canary_exposure_mean is not None:
        lines.append(
            f"canary exposure: mean {report.canary_exposure_mean:.2f} bits, max "
            f"{report.canary_exposure_max:.2f} bits"
        )
    lines.append(
        "every empirical bound is at or below the claimed epsilon"
        if report.consistent
        else "AN EMPIRICAL BOUND EXCEEDS THE CLAIMED EPSILON: evidence of a privacy "
        "bug (each bound at its confidence; a one-run audit is a heuristic, see "
        "docs/privacy-research.md)"
    )
    return "\n".join(lines)
