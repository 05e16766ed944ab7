"""One client's local round: load its records, fine-tune, charge its ledger.

No Flower imports: the ClientApp hands in weights and settings and wraps the
returned `RoundOutcome` in a reply. Only the trainable weights and numbers leave
this module; records, token ids and features stay in the client's process and
its state directory. The data, model-loading and distillation modules (and so
transformers) are imported where a round needs them: a head-mode round on
features already on disk trains without them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import FinetuneSettings, RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.device import on_device
from fedmodel.model.head import FeatureHead, load_trainable_state, trainable_state
from fedmodel.privacy import (
    BudgetExhausted,
    PrivacyLedger,
    StepCounter,
    make_private,
    plan_privacy,
    poisson_steps_per_epoch,
)
from fedmodel.privacy.ledger_reset import LEDGER_FILE
from fedmodel.training.embedding_cache import cached_features, data_fingerprint
from fedmodel.training.feature_store import StoredFeatures
from fedmodel.training.loops import (
    LogitsFn,
    LossFn,
    build_optimizer,
    feature_logits,
    text_logits,
    train_epochs,
)

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundOutcome:
    """What a client's round produced; `released_metrics` is what may leave."""

    weights: dict[str, torch.Tensor] | None
    num_examples: int
    train_loss: float
    budget_exhausted: bool = False
    privacy: dict[str, float] = field(default_factory=dict)
    compute_seconds: float = 0.0
    # Building the model (or reading stored features) before training; local.
    prepare_seconds: float = 0.0
    # Central DP: the server's noise covers the weights only, not statistics.
    withhold_statistics: bool = False

    def released_metrics(self) -> dict[str, float]:
        """The numbers a reply may carry besides the weights.

        Under DP only what the guarantee covers or what is public anyway: the
        record count (FedAvg's weight) and the privacy figures, which depend on
        the count and the plan alone. The training loss and compute time are
        computed from the records without noise, so they are released only in
        non-private runs.
        """
        released = {"num-examples": float(self.num_examples), **self.privacy}
        if not (self.privacy or self.budget_exhausted or self.withhold_statistics):
            released["train-loss"] = self.train_loss
            released["compute-seconds"] = self.compute_seconds
        return released


@dataclass
class _LocalJob:
    """What a round trains: the module DP-SGD wraps, its data and its loss."""

    module: nn.Module
    loader: DataLoader
    logits_of: Callable[[nn.Module], LogitsFn]
    # The model whose trainable weights are the reply.
    exchanged: nn.Module
    # Optimizer and learning rate; the batch size (and so the sample rate the
    # ledger plans with) is always finetune.batch_size.
    optimizer: FinetuneSettings
    loss_fn: LossFn | None = None


def run_local_round(
    settings: RunSettings,
    *,
    client_id: int,
    state_dir: Path,
    global_weights: dict[str, torch.Tensor],
    round_number: int,
    records: tuple[datasets.Dataset | StoredFeatures, tuple[str, ...]] | None = None,
    teacher_weights: dict[str, torch.Tensor] | None = None,
) -> RoundOutcome:
    """Train on this client's records for one round and return the update.

    Without `teacher_weights` the round fine-tunes the global model
    (`global_weights`). With them it is a federated distillation round: the
    student (`global_weights`) learns the teacher's outputs on this client's
    records. Either way, with DP on, the round's privacy cost is written to the
    client's one ledger on disk before training starts, so a crash at any later
    point over-counts and never under-counts. A round that would exceed the
    budget does not train. `records` (training split, label names) is a
    deployed site's own data (or its stored head-mode features); None loads
    the simulated client's partition.
    """
    started = time.perf_counter()
    train_split: datasets.Dataset | StoredFeatures
    if records is None:
        from fedmodel.data import load_client_data

        train_split, _, label_names = load_client_data(settings, client_id)
    else:
        train_split, label_names = records
    state_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(train_split, StoredFeatures):
        job = _stored_features_job(
            settings,
            stored=train_split,
            global_weights=global_weights,
            round_number=round_number,
        )
    elif teacher_weights is None:
        job = _finetune_job(
            settings,
            split=train_split,
            label_names=label_names,
            global_weights=global_weights,
            state_dir=state_dir,
            round_number=round_number,
        )
    else:
        job = _distill_job(
            settings,
            split=train_split,
            label_names=label_names,
            student_weights=global_weights,
            teacher_weights=teacher_weights,
            round_number=round_number,
        )
    prepare_seconds = time.perf_counter() - started
    finetune = settings.finetune
    module, loader = job.module, job.loader
    optimizer = build_optimizer(module.parameters(), job.optimizer)
    steps = finetune.local_epochs * poisson_steps_per_epoch(
        len(train_split), finetune.batch_size
    )
    privacy: dict[str, float] = {}
    count_steps: StepCounter | None = None
    if settings.privacy.record_level:
        ledger = _open_ledger(
            settings, client_id=client_id, state_dir=state_dir, split=train_split
        )
        try:
            epsilon = ledger.charge(round_number=round_number, steps=steps)
        except BudgetExhausted as exc:
            log.warning("client %d: %s", client_id, exc)
            ledger.mark_exhausted()
            return RoundOutcome(
                weights=None,
                num_examples=0,
                train_loss=float("nan"),
                budget_exhausted=True,
                privacy=_privacy_figures(ledger, ledger.epsilon),
            )
        assert settings.privacy.max_grad_norm is not None
        module, optimizer, loader, count_steps = make_private(
            model=module,
            optimizer=optimizer,
            loader=loader,
            noise_multiplier=ledger.noise_multiplier,
            max_grad_norm=settings.privacy.max_grad_norm,
            accountant=settings.privacy.accountant,
        )
        privacy = _privacy_figures(ledger, epsilon)

    mu = settings.strategy.proximal_mu if settings.strategy.name == "fedprox" else 0.0
    loss = train_epochs(
        module,
        loader,
        optimizer,
        logits_fn=job.logits_of(module),
        epochs=finetune.local_epochs,
        proximal_mu=mu,
        loss_fn=job.loss_fn,
    )
    if count_steps is not None:
        # Refuse to release an update whose cost exceeds what the ledger holds.
        count_steps.check_within(
            noise_multiplier=ledger.noise_multiplier,
            sample_rate=ledger.sample_rate,
            steps=steps,
        )
    return RoundOutcome(
        weights=trainable_state(job.exchanged),
        num_examples=len(train_split),
        train_loss=loss,
        privacy=privacy,
        compute_seconds=time.perf_counter() - started,
        prepare_seconds=prepare_seconds,
        withhold_statistics=settings.privacy.client_level,
    )


def _finetune_job(
    settings: RunSettings,
    *,
    split: datasets.Dataset,
    label_names: tuple[str, ...],
    global_weights: dict[str, torch.Tensor],
    state_dir: Path,
    round_number: int,
) -> _LocalJob:
    from fedmodel.model.load import (
        build_classifier,
        classification_head,
        prepare_for_finetuning,
    )

    # On its device before LoRA wraps it: PEFT adapters are created where the
    # wrapped layers are.
    model = on_device(
        build_classifier(settings.model, label_names=label_names, seed=settings.seed),
        settings.device,
    )
    trainable = prepare_for_finetuning(model, settings.finetune)
    load_trainable_state(trainable, global_weights)
    if settings.finetune.mode != "head":
        return _LocalJob(
            module=trainable,
            loader=_text_loader(settings, split, round_number=round_number),
            logits_of=text_logits,
            exchanged=trainable,
            optimizer=settings.finetune,
        )
    features, labels = cached_features(
        settings, model=model, split=split, state_dir=state_dir
    )
    return _LocalJob(
        module=classification_head(model),
        loader=_feature_loader(settings, features, labels, round_number=round_number),
        logits_of=feature_logits,
        exchanged=trainable,
        optimizer=settings.finetune,
    )


def _stored_features_job(
    settings: RunSettings,
    *,
    stored: StoredFeatures,
    global_weights: dict[str, torch.Tensor],
    round_number: int,
) -> _LocalJob:
    """Head mode on features a site stored in an earlier round: no encoder."""
    weight = global_weights.get("classifier.weight")
    if weight is None or weight.dim() != 2:
        raise FedmodelError(
            "head-mode weights hold no 2-D 'classifier.weight': server and site "
            "must use the same finetune settings"
        )
    head = on_device(
        FeatureHead(
            hidden_size=int(stored.features.shape[1]),
            num_labels=int(weight.shape[0]),
            dropout=stored.dropout,
        ),
        settings.device,
    )
    load_trainable_state(head, global_weights)
    return _LocalJob(
        module=nn.Sequential(head.dropout, head.classifier),
        loader=_feature_loader(
            settings, stored.features, stored.labels, round_number=round_number
        ),
        logits_of=feature_logits,
        exchanged=head,
        optimizer=settings.finetune,
    )


def _feature_loader(
    settings: RunSettings,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    round_number: int,
) -> DataLoader:
    return DataLoader(
        TensorDataset(features, labels),
        batch_size=settings.finetune.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed + round_number),
    )


def _distill_job(
    settings: RunSettings,
    *,
    split: datasets.Dataset,
    label_names: tuple[str, ...],
    student_weights: dict[str, torch.Tensor],
    teacher_weights: dict[str, torch.Tensor],
    round_number: int,
) -> _LocalJob:
    from fedmodel.distill.server import federated_distill_loss
    from fedmodel.model.load import (
        build_classifier,
        build_student,
        merged_classifier,
        prepare_for_finetuning,
        prepare_student_for_distillation,
    )

    teacher = on_device(
        build_classifier(settings.model, label_names=label_names, seed=settings.seed),
        settings.device,
    )
    load_trainable_state(
        prepare_for_finetuning(teacher, settings.finetune), teacher_weights
    )
    teacher_model = merged_classifier(teacher)
    student = prepare_student_for_distillation(
        on_device(
            build_student(teacher_model, settings.distill.student), settings.device
        )
    )
    load_trainable_state(student, student_weights)
    return _LocalJob(
        module=student,
        loader=_text_loader(settings, split, round_number=round_number),
        logits_of=text_logits,
        exchanged=student,
        # The finetune optimizer is tuned for what fine-tuning moves (by
        # default a linear head, at SGD lr 2.0); the student's transformer
        # layers take AdamW at the distillation learning rate.
        optimizer=dataclasses.replace(
            settings.finetune,
            optimizer="adamw",
            learning_rate=settings.distill.learning_rate,
            momentum=0.0,
            weight_decay=0.0,
        ),
        loss_fn=federated_distill_loss(
            teacher_model, temperature=settings.distill.temperature
        ),
    )


def _text_loader(
    settings: RunSettings, split: datasets.Dataset, *, round_number: int
) -> DataLoader:
    from fedmodel.data import make_text_loader
    from fedmodel.model.load import load_tokenizer

    return make_text_loader(
        load_tokenizer(settings.model),
        list(split["text"]),
        list(split["label"]),
        max_length=settings.task.max_length,
        batch_size=settings.finetune.batch_size,
        shuffle=True,
        seed=settings.seed + round_number,
    )


def _privacy_figures(ledger: PrivacyLedger, epsilon: float) -> dict[str, float]:
    return {
        "epsilon": epsilon,
        "delta": ledger.delta,
        "noise-multiplier": ledger.noise_multiplier,
        "sample-rate": ledger.sample_rate,
        "steps": float(ledger.steps),
    }


def _open_ledger(
    settings: RunSettings,
    *,
    client_id: int,
    state_dir: Path,
    split: datasets.Dataset | StoredFeatures,
) -> PrivacyLedger:
    privacy = settings.privacy
    assert privacy.target_epsilon is not None
    num_records = len(split)
    plan = plan_privacy(
        target_epsilon=privacy.target_epsilon,
        delta=privacy.target_delta,
        num_records=num_records,
        batch_size=settings.finetune.batch_size,
        local_epochs=settings.finetune.local_epochs,
        planned_rounds=planned_rounds(settings),
        accountant=privacy.accountant,
        client_id=str(client_id),
    )
    return PrivacyLedger.open(
        state_dir / LEDGER_FILE,
        client_id=str(client_id),
        plan=plan,
        data_fingerprint=split.fingerprint
        if isinstance(split, StoredFeatures)
        else data_fingerprint(split),
    )


def planned_rounds(settings: RunSettings) -> int:
    """Rounds a client's noise is calibrated for: the teacher's and the student's.

    Federated distillation rounds draw on the same budget, so they are in the
    plan from round 1 on.
    """
    extra = settings.distill.rounds if settings.distill.name == "federated" else 0
    return settings.num_rounds + extra
