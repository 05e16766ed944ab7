"""Finetune modes: what local training moves, and on which inputs.

`FINETUNE_MODES` is the registry `finetune.mode` names an entry of (the
accepted names are declared in `fedmodel.config.modes`; a test keeps the two
equal). Each entry says which parameters train and whether training runs on
pooled features of a frozen encoder (head) or on token batches (lora, full);
`model/head.py` moves exactly those weights between parties. `peft` is
imported only by the LoRA mode: it takes about 0.8 s, and every client process of
a head-mode run would pay it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn

from fedmodel.config import FinetuneSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import PooledBertForSequenceClassification

Prepare = Callable[[PooledBertForSequenceClassification, FinetuneSettings], nn.Module]
CheckEncoder = Callable[[nn.Module, FinetuneSettings], None]


def _fits_any_encoder(encoder: nn.Module, finetune: FinetuneSettings) -> None:
    """Head and full modes name no layer of the encoder: nothing to check."""


@dataclass(frozen=True)
class FinetuneMode:
    """One finetune mode: which weights train, and on which inputs."""

    name: str
    # Freezes what stays fixed and returns the module whose trainable weights
    # are exchanged (a PEFT wrapper for LoRA).
    prepare: Prepare
    # True: the encoder is frozen, so each party embeds its texts once and
    # trains or evaluates the classification head on pooled features.
    on_features: bool
    # Refuses settings the encoder (`model.bert`, weights or a skeleton without
    # them) cannot meet; `prepare` asks it too, and privacy-plan asks it first.
    check_encoder: CheckEncoder = _fits_any_encoder

    def trained_module(
        self, model: PooledBertForSequenceClassification, trainable: nn.Module
    ) -> nn.Module:
        """The module a training step runs: the head alone on features, or all."""
        return classification_head(model) if self.on_features else trainable


def _head_only(
    model: PooledBertForSequenceClassification, finetune: FinetuneSettings
) -> nn.Module:
    _freeze_all_but_head(model)
    return model


def _full(
    model: PooledBertForSequenceClassification, finetune: FinetuneSettings
) -> nn.Module:
    _freeze_all_but_head(model)
    for name, param in model.bert.named_parameters():
        param.requires_grad = finetune.train_embeddings or not name.startswith(
            "embeddings."
        )
    return model


def _lora(
    model: PooledBertForSequenceClassification, finetune: FinetuneSettings
) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    _check_lora_targets(model.bert, finetune)
    _freeze_all_but_head(model)
    lora = LoraConfig(
        r=finetune.lora_rank,
        lora_alpha=finetune.lora_alpha,
        target_modules=list(finetune.lora_targets),
        lora_dropout=0.0,
        bias="none",
    )
    wrapped = get_peft_model(model, lora)
    for param in model.classifier.parameters():
        param.requires_grad = True
    return wrapped


def _check_lora_targets(encoder: nn.Module, finetune: FinetuneSettings) -> None:
    """Refuse targets that name no linear layer of the encoder.

    Matched as PEFT matches them (a name, or its dotted tail). PEFT itself
    raises only when no target matches, from deep inside; a typo beside a
    good name trained fewer adapters than asked.
    """
    targets = list(finetune.lora_targets)
    linear = [
        name
        for name, module in encoder.named_modules()
        if isinstance(module, nn.Linear)
    ]
    unmatched = [
        target
        for target in targets
        if not any(name == target or name.endswith(f".{target}") for name in linear)
    ]
    if targets and not unmatched:
        return
    named = sorted({name.rsplit(".", 1)[-1] for name in linear})
    what = f"names no layer: {unmatched}" if targets else "is empty"
    raise FedmodelError(
        f"finetune.lora_targets={targets} {what}. LoRA adapts the encoder's "
        f"linear layers; this model's are named {named} (e.g. "
        "finetune.lora_targets='[query,value]')"
    )


def _freeze_all_but_head(model: PooledBertForSequenceClassification) -> None:
    for param in model.parameters():
        param.requires_grad = False
    for param in model.classifier.parameters():
        param.requires_grad = True


FINETUNE_MODES: dict[str, FinetuneMode] = {
    "head": FinetuneMode(name="head", prepare=_head_only, on_features=True),
    "lora": FinetuneMode(
        name="lora",
        prepare=_lora,
        on_features=False,
        check_encoder=_check_lora_targets,
    ),
    "full": FinetuneMode(name="full", prepare=_full, on_features=False),
}


def finetune_mode(finetune: FinetuneSettings) -> FinetuneMode:
    """The registry entry `finetune.mode` names."""
    try:
        return FINETUNE_MODES[finetune.mode]
    except KeyError:
        raise FedmodelError(
            f"finetune.mode must be one of {list(FINETUNE_MODES)}, got "
            f"{finetune.mode!r}"
        ) from None


def prepare_for_finetuning(
    model: PooledBertForSequenceClassification, finetune: FinetuneSettings
) -> nn.Module:
    """Freeze what the fine-tuning mode keeps fixed; add LoRA adapters if asked.

    Returns the module to train (a PEFT wrapper in `lora` mode).
    """
    return finetune_mode(finetune).prepare(model, finetune)


def classification_head(model: PooledBertForSequenceClassification) -> nn.Module:
    """The layers after pooling (dropout, linear) as one module.

    Its parameters are the classifier's own, so training it trains the model;
    it is what head mode trains on pooled features and what Opacus wraps.
    """
    return nn.Sequential(model.dropout, model.classifier)


def merged_classifier(model: nn.Module) -> PooledBertForSequenceClassification:
    """The plain classifier, with LoRA adapters merged into its weights."""
    if isinstance(model, PooledBertForSequenceClassification):
        return model
    # Only `_lora` wraps the classifier, and it has imported peft by then.
    from peft import PeftModel

    assert isinstance(model, PeftModel), type(model)
    merged = model.merge_and_unload()
    assert isinstance(merged, PooledBertForSequenceClassification)
    return merged


@contextmanager
def held_fixed(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Exclude `params` from training inside the block (no gradient, no update).

    A client's DP-SGD then clips each example's gradient over the other
    parameters only; server distillation leaves the teacher's parts alone.
    They count as trainable again afterwards, so a reply still carries them.
    """
    params = tuple(params)
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)
