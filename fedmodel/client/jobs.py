"""What a client's round trains: fine-tuning the shared model, or distilling.

A job is the module DP-SGD wraps, its loader, its logits and loss, and the
model whose trainable weights are the reply. Records, token ids and features
stay in the client's process and its state directory. The data, model-loading
and distillation modules (and so transformers) are imported where a job needs
them: a head-mode round on features already on disk trains without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.client.round_streams import batch_order_seed
from fedmodel.config import FinetuneSettings, RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.device import on_device
from fedmodel.model.head import FeatureHead, load_trainable_state
from fedmodel.training.embedding_cache import cached_features
from fedmodel.training.feature_store import StoredFeatures
from fedmodel.training.loops import LogitsFn, LossFn, feature_logits, text_logits

if TYPE_CHECKING:
    import datasets

    from fedmodel.data.tokenization import Encoded


@dataclass
class LocalJob:
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
    # Parameters local training holds at their global value (still exchanged).
    held: tuple[nn.Parameter, ...] = ()


def finetune_job(
    settings: RunSettings,
    *,
    split: datasets.Dataset,
    label_names: tuple[str, ...],
    global_weights: dict[str, torch.Tensor],
    state_dir: Path,
    client_id: int,
    round_number: int,
    encoded: list[Encoded] | None = None,
) -> LocalJob:
    """Fine-tune the global model as the finetune mode says, on this client's data.

    `encoded` is the split's texts as already tokenized (`RoundRecords`), or None.
    """
    from fedmodel.model.finetune import finetune_mode
    from fedmodel.model.load import build_classifier

    mode = finetune_mode(settings.finetune)
    # On its device before LoRA wraps it: PEFT adapters are created where the
    # wrapped layers are.
    model = on_device(
        build_classifier(settings.model, label_names=label_names, seed=settings.seed),
        settings.device,
    )
    trainable = mode.prepare(model, settings.finetune)
    load_trainable_state(trainable, global_weights)
    logits_of: Callable[[nn.Module], LogitsFn]
    if mode.on_features:
        features, labels = cached_features(
            settings, model=model, split=split, state_dir=state_dir, encoded=encoded
        )
        loader = feature_loader(
            settings,
            features,
            labels,
            client_id=client_id,
            round_number=round_number,
        )
        logits_of = feature_logits
    else:
        loader = text_loader(
            settings,
            split,
            client_id=client_id,
            round_number=round_number,
            encoded=encoded,
        )
        logits_of = text_logits
    return LocalJob(
        module=mode.trained_module(model, trainable),
        loader=loader,
        logits_of=logits_of,
        exchanged=trainable,
        optimizer=settings.finetune,
        held=_held_head_bias(settings, model.classifier),
    )


def stored_features_job(
    settings: RunSettings,
    *,
    stored: StoredFeatures,
    global_weights: dict[str, torch.Tensor],
    client_id: int,
    round_number: int,
) -> LocalJob:
    """Head mode on features stored in an earlier round: no encoder.

    It trains exactly as the round that builds the classifier would: the
    same starting weights (the global ones), data order and dropout
    (`local_round.seed_dropout` seeds it before either trains).
    """
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
    return LocalJob(
        module=nn.Sequential(head.dropout, head.classifier),
        loader=feature_loader(
            settings,
            stored.features,
            stored.labels,
            client_id=client_id,
            round_number=round_number,
        ),
        logits_of=feature_logits,
        exchanged=head,
        optimizer=settings.finetune,
        held=_held_head_bias(settings, head.classifier),
    )


def _held_head_bias(
    settings: RunSettings, layer: nn.Linear
) -> tuple[nn.Parameter, ...]:
    """The head's bias, when `finetune.train_head_bias` holds it fixed."""
    if settings.finetune.train_head_bias or layer.bias is None:
        return ()
    return (layer.bias,)


def feature_loader(
    settings: RunSettings,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    client_id: int,
    round_number: int,
) -> DataLoader:
    """Pooled features and labels in batches, in this client's order for the round.

    Under DP-SGD Opacus' Poisson sampler, drawing from the operating system,
    replaces this order (`privacy/engine.py`).
    """
    return DataLoader(
        TensorDataset(features, labels),
        batch_size=settings.finetune.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(
            batch_order_seed(
                settings.seed, client_id=client_id, round_number=round_number
            )
        ),
    )


def distill_job(
    settings: RunSettings,
    *,
    split: datasets.Dataset,
    label_names: tuple[str, ...],
    student_weights: dict[str, torch.Tensor],
    teacher_weights: dict[str, torch.Tensor],
    client_id: int,
    round_number: int,
    encoded: list[Encoded] | None = None,
) -> LocalJob:
    """Distil the teacher into the student on these records (`encoded`: as above)."""
    from fedmodel.distill.server import federated_distill_loss
    from fedmodel.model.finetune import merged_classifier, prepare_for_finetuning
    from fedmodel.model.load import build_classifier
    from fedmodel.model.student import (
        build_student,
        prepare_student_for_distillation,
    )

    teacher = on_device(
        build_classifier(settings.model, label_names=label_names, seed=settings.seed),
        settings.device,
    )
    trainable = prepare_for_finetuning(teacher, settings.finetune)
    load_trainable_state(trainable, teacher_weights)
    # LoRA's wrapper merges its adapters; `teacher` itself holds them unmerged.
    teacher_model = merged_classifier(trainable)
    student = prepare_student_for_distillation(
        on_device(
            build_student(teacher_model, settings.distill.student), settings.device
        )
    )
    load_trainable_state(student, student_weights)
    return LocalJob(
        module=student,
        loader=text_loader(
            settings,
            split,
            client_id=client_id,
            round_number=round_number,
            encoded=encoded,
        ),
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


def text_loader(
    settings: RunSettings,
    split: datasets.Dataset,
    *,
    client_id: int,
    round_number: int,
    encoded: list[Encoded] | None = None,
) -> DataLoader:
    """The client's tokenized records, in this client's order for the round.

    Under DP-SGD Opacus' Poisson sampler replaces this order, as in
    `feature_loader`. `encoded` is the records' texts as already tokenized
    (a site's, `RoundRecords`); None, and they are tokenized here.
    """
    from fedmodel.data.tokenization import make_text_loader
    from fedmodel.model.load import load_tokenizer

    # One query, as `data_fingerprint` reads them: `split["text"]` is a lazy
    # column read a record a query (0.096 s of a default bank client's 0.27 s
    # LoRA set-up; 0.006 s in one query).
    records = split[:]
    return make_text_loader(
        load_tokenizer(settings.model),
        records["text"],
        records["label"],
        max_length=settings.task.max_length,
        batch_size=settings.finetune.batch_size,
        shuffle=True,
        seed=batch_order_seed(
            settings.seed, client_id=client_id, round_number=round_number
        ),
        encoded=encoded,
    )
