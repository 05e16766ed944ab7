"""The loss-threshold membership attack and canary exposure, on given losses.

A record the model was trained on tends to have a lower loss, so the attack
scores each record by its negated loss. No model or data code here: callers
compute the losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from fedmodel.privacy.audit_bounds import EpsilonBound, audit_bound


@dataclass(frozen=True)
class AttackResult:
    """One membership test: AUC, the epsilon bound, and what it compared."""

    auc: float
    bound: EpsilonBound
    member_loss_mean: float
    non_member_loss_mean: float


def attack(
    member_losses: np.ndarray,
    non_member_losses: np.ndarray,
    *,
    delta: float,
    confidence: float,
    seed: int,
) -> AttackResult:
    """The loss attack: a lower loss says member."""
    scores = np.concatenate([-member_losses, -non_member_losses])
    truth = np.concatenate(
        [np.ones(len(member_losses)), np.zeros(len(non_member_losses))]
    )
    return AttackResult(
        auc=float(roc_auc_score(truth, scores)),
        bound=audit_bound(
            -member_losses,
            -non_member_losses,
            delta=delta,
            confidence=confidence,
            seed=seed,
        ),
        member_loss_mean=float(member_losses.mean()),
        non_member_loss_mean=float(non_member_losses.mean()),
    )


def exposure(canary_losses: np.ndarray, reference_losses: np.ndarray) -> np.ndarray:
    """Each canary's exposure (Carlini et al.) against never-planted references.

    log2(R + 1) - log2(rank), where rank is the canary's place by loss among
    itself and the R references: 0 means unremarkable, log2(R + 1) the top.
    """
    ranks = 1 + (reference_losses[None, :] < canary_losses[:, None]).sum(axis=1)
    return np.log2(len(reference_losses) + 1) - np.log2(ranks)
