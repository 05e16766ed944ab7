"""What `step_overhead.py` times: one mode's batches, and each way to step on them.

`build_workload` gives a fine-tuning mode's fixed batches of real Banking77
records (features of the frozen encoder for the head mode, texts otherwise)
and a fresh trainable module per call; `build_variant` wraps one such module
for a non-private step (`off`) or a DP step with one clipping method.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from quiet_warnings import silence_known_warnings
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.data.tasks import load_task
from fedmodel.data.tokenization import make_text_loader
from fedmodel.model.finetune import classification_head, prepare_for_finetuning
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.privacy.engine import Criterion, private_training
from fedmodel.training.embedding_cache import embed_split
from fedmodel.training.loops import (
    Batch,
    LogitsFn,
    build_optimizer,
    feature_logits,
    text_logits,
)

silence_known_warnings()

NON_PRIVATE = "off"
NOISE_MULTIPLIER = 1.0  # its value does not change the cost of drawing noise


@dataclass
class Variant:
    """One way of taking a training step, and its timings."""

    name: str
    step: Callable[[Batch], tuple[float, float]] | None
    error: str = ""
    total_ms: list[float] = field(default_factory=list)
    backward_ms: list[float] = field(default_factory=list)
    update_ms: list[float] = field(default_factory=list)


def mode_settings(mode: str, *, num_records: int) -> RunSettings:
    """Run settings of the default config with one fine-tuning mode."""
    raw = compose_config(
        [
            "model=minilm",
            "task=bank",
            f"finetune={mode}",
            f"task.max_train_examples={num_records}",
        ]
    )
    return settings_from_dict(raw)


@dataclass(frozen=True)
class Workload:
    """What one mode trains on: a loader for Opacus and fixed batches to time."""

    build_module: Callable[[], nn.Module]
    logits_of: Callable[[nn.Module], LogitsFn]
    loader: DataLoader
    batches: list[Batch]


def build_workload(
    settings: RunSettings, *, batch_size: int, num_batches: int
) -> Workload:
    """Fixed batches of real records and a fresh trainable module per call."""
    data = load_task(settings.task, seed=settings.seed)
    label_names = data.label_names
    split = data.train
    if len(split) < batch_size * num_batches:
        raise SystemExit(
            f"--batch-size {batch_size} x --batches {num_batches} needs more than "
            f"the {len(split)} Banking77 training records there are"
        )

    if settings.finetune.mode == "head":
        return _head_workload(
            settings,
            split,
            label_names=label_names,
            batch_size=batch_size,
            num_batches=num_batches,
        )

    def fresh_model() -> nn.Module:
        model = build_classifier(
            settings.model, label_names=label_names, seed=settings.seed
        )
        return prepare_for_finetuning(model, settings.finetune)

    loader = make_text_loader(
        load_tokenizer(settings.model),
        list(split["text"]),
        list(split["label"]),
        max_length=settings.task.max_length,
        batch_size=batch_size,
        shuffle=False,
        seed=settings.seed,
    )
    batches = [batch for _, batch in zip(range(num_batches), loader, strict=False)]
    return Workload(fresh_model, text_logits, loader, batches)


def _head_workload(
    settings: RunSettings,
    split: Any,
    *,
    label_names: tuple[str, ...],
    batch_size: int,
    num_batches: int,
) -> Workload:
    """As in a client's round: the frozen encoder embeds the records once and
    only dropout + the classification layer train, on the features."""
    encoder = build_classifier(
        settings.model, label_names=label_names, seed=settings.seed
    )
    features, labels = embed_split(settings, model=encoder, split=split)
    del encoder
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(len(labels), generator=generator)
    features, labels = features[order], labels[order]
    loader: DataLoader = DataLoader(
        TensorDataset(features, labels), batch_size=batch_size
    )
    batches: list[Batch] = [
        (features[i : i + batch_size], labels[i : i + batch_size])
        for i in range(0, batch_size * num_batches, batch_size)
    ]

    def fresh_head() -> nn.Module:
        model = build_classifier(
            settings.model, label_names=label_names, seed=settings.seed
        )
        prepare_for_finetuning(model, settings.finetune)
        return classification_head(model)

    return Workload(fresh_head, feature_logits, loader, batches)


def timed_step(
    model: nn.Module,
    optimizer: Optimizer,
    *,
    logits_fn: LogitsFn,
    loss_fn: Criterion,
) -> Callable[[Batch], tuple[float, float]]:
    """One optimizer step on a batch, returning (forward+backward, update) seconds."""

    def run(batch: Batch) -> tuple[float, float]:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits, labels = logits_fn(batch)
        loss = loss_fn(logits, labels)
        loss.backward()
        middle = time.perf_counter()
        optimizer.step()
        return middle - start, time.perf_counter() - middle

    return run


def build_variant(name: str, workload: Workload, settings: RunSettings) -> Variant:
    """A non-private or DP step over a freshly built module, or why none works."""
    module = workload.build_module()
    module.train()
    optimizer = build_optimizer(module.parameters(), settings.finetune)
    assert settings.privacy.max_grad_norm is not None
    clip = settings.privacy.max_grad_norm
    try:
        if name == NON_PRIVATE:
            step = timed_step(
                module,
                optimizer,
                logits_fn=workload.logits_of(module),
                loss_fn=nn.functional.cross_entropy,
            )
        else:
            wrapped = private_training(
                model=module,
                optimizer=optimizer,
                loader=workload.loader,
                noise_multiplier=NOISE_MULTIPLIER,
                max_grad_norm=clip,
                grad_sample_mode=name,
            )
            step = timed_step(
                wrapped.model,
                wrapped.optimizer,
                logits_fn=workload.logits_of(wrapped.model),
                loss_fn=wrapped.criterion,
            )
    except Exception as exc:  # noqa: BLE001 - a mode that fails is a result
        return Variant(name, None, error=short_error(exc))
    return Variant(name, step)


def short_error(exc: BaseException) -> str:
    """The exception's type and the start of its message, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:110]}"
