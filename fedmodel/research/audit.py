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

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import yaml
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fedmodel.config import RunSettings, settings_from_dict
from fedmodel.data import load_client_data, make_text_loader
from fedmodel.data.canaries import canary_splits
from fedmodel.errors import FedmodelError
from fedmodel.privacy.membership_attack import AttackResult, attack, exposure
from fedmodel.run.layout import RESOLVED_CONFIG, SUMMARY_FILE, TEACHER_DIR
from fedmodel.training.loops import TEXT_INPUTS

log = logging.getLogger(__name__)

LOSS_BATCH = 128


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


def load_run(run_dir: Path) -> tuple[RunSettings, dict[str, Any]]:
    """A finished run's settings and summary, or a clear error."""
    if not run_dir.is_dir():
        raise FedmodelError(f"run folder {run_dir} does not exist")
    for name in (RESOLVED_CONFIG, SUMMARY_FILE, f"{TEACHER_DIR}/config.json"):
        if not (run_dir / name).is_file():
            raise FedmodelError(
                f"{run_dir} has no {name}: give the folder of a finished "
                "`fedmodel simulate` run"
            )
    try:
        raw = yaml.safe_load((run_dir / RESOLVED_CONFIG).read_text(encoding="utf-8"))
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise FedmodelError(f"cannot read the run in {run_dir}: {exc}") from exc
    return settings_from_dict(raw), summary


def example_losses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: datasets.Dataset,
    *,
    max_length: int,
) -> np.ndarray:
    """The model's cross-entropy loss on each record, in the split's order."""
    loader = make_text_loader(
        tokenizer,
        list(split["text"]),
        list(split["label"]),
        max_length=max_length,
        batch_size=LOSS_BATCH,
        shuffle=False,
        seed=0,
    )
    losses = []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            inputs = {key: batch[key] for key in TEXT_INPUTS if key in batch}
            logits = model(**inputs).logits
            losses.append(
                torch.nn.functional.cross_entropy(
                    logits, batch["labels"], reduction="none"
                ).numpy()
            )
    return np.concatenate(losses) if losses else np.zeros(0)


def audit_run(
    run_dir: Path,
    *,
    client: int | None = None,
    confidence: float = 0.95,
    max_records: int = 2000,
    seed: int = 0,
) -> AuditReport:
    """Attack the final model of `run_dir` on one client's records (and canaries)."""
    settings, summary = load_run(run_dir)
    client = settings.audit.client if client is None else client
    train, val, _ = load_client_data(settings, client)
    planted = settings.audit.canaries if client == settings.audit.client else 0
    if len(val) < 2:
        raise FedmodelError(
            f"client {client} of {run_dir} holds {len(val)} held-out records; the "
            "audit compares members with held-out records of the same client: rerun "
            "with task.val_fraction above 0 (e.g. 0.5 for a strong audit)"
        )
    rng = np.random.default_rng(seed)
    members = _at_most(members_without(train, planted), max_records, rng)
    non_members = _at_most(val, max_records, rng)
    model = AutoModelForSequenceClassification.from_pretrained(
        run_dir / TEACHER_DIR, trust_remote_code=True
    )
    tokenizer = AutoTokenizer.from_pretrained(
        run_dir / TEACHER_DIR, trust_remote_code=True
    )
    length = settings.task.max_length

    def losses(split: datasets.Dataset) -> np.ndarray:
        return example_losses(model, tokenizer, split, max_length=length)

    figures = _client_figures(summary, client)
    delta = float(figures.get("delta") or 0.0)
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
        claimed_epsilon=figures.get("epsilon"),
        delta=delta,
        records=records,
    )
    if not planted:
        return report
    clean = datasets.concatenate_datasets(
        [members_without(train, planted), val.select_columns(["text", "label"])]
    )
    canaries, reference = canary_splits(
        settings, client_records=clean, num_labels=model.config.num_labels
    )
    if len(canaries) < 2 or len(reference) < 2:
        raise FedmodelError(
            f"{run_dir} planted {len(canaries)} canaries with {len(reference)} "
            "references; the canary audit needs at least 2 of each: rerun with "
            "audit.canaries >= 2 and audit.reference_canaries >= 2"
        )
    if list(canaries["text"]) != list(train["text"][len(train) - planted :]):
        raise FedmodelError(
            f"the canaries rebuilt from {run_dir}/{RESOLVED_CONFIG} differ from the "
            f"ones client {client} trained on: the run's data or code has changed"
        )
    canary_losses, reference_losses = losses(canaries), losses(reference)
    exposures = exposure(canary_losses, reference_losses)
    return replace(
        report,
        canaries=attack(
            canary_losses,
            reference_losses,
            delta=delta,
            confidence=confidence,
            seed=seed,
        ),
        canary_exposure_mean=float(exposures.mean()),
        canary_exposure_max=float(exposures.max()),
    )


def members_without(train: datasets.Dataset, planted: int) -> datasets.Dataset:
    """The client's own training records, without the canaries appended to them."""
    return train.select(range(len(train) - planted)).select_columns(["text", "label"])


def _at_most(
    split: datasets.Dataset, limit: int, rng: np.random.Generator
) -> datasets.Dataset:
    if len(split) <= limit:
        return split
    return split.select(np.sort(rng.choice(len(split), size=limit, replace=False)))


def _client_figures(summary: dict[str, Any], client: int) -> dict[str, Any]:
    for figures in summary.get("clients", []):
        if figures.get("client_id") == client:
            return dict(figures)
    return {}


def render_audit(report: AuditReport) -> str:
    """The audit's findings as a few lines of text."""
    claimed = report.claimed_epsilon
    promise = (
        "claimed: no DP (privacy=off), epsilon unbounded"
        if claimed is None
        else f"claimed: {report.privacy_level}-level epsilon {claimed:.3f} at delta "
        f"{report.delta:.3g}"
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
            f"epsilon >= {bound.epsilon:.3f} at {bound.confidence:.0%} confidence "
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
        else "AN EMPIRICAL BOUND EXCEEDS THE CLAIMED EPSILON: evidence of a privacy bug"
    )
    return "\n".join(lines)
