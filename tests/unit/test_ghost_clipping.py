"""Ghost, onepass and per-example hooks give the same DP-SGD update."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.model.finetune import prepare_for_finetuning
from fedmodel.model.load import build_classifier
from fedmodel.privacy.engine import private_training
from fedmodel.training.loops import Batch, criterion_loss, text_logits, train_epochs
from tests.conftest import small_config

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def feature_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 6, generator=generator) * 5, torch.randint(
        0, 3, (16,), generator=generator
    )


def one_step(model: nn.Module, *, mode: str, batch: Batch, clip: float) -> nn.Module:
    """One DP-SGD step on `batch` with noise off; returns the stepped model."""
    features, labels = batch if isinstance(batch, tuple) else (None, batch["labels"])
    dataset = TensorDataset(torch.zeros(len(labels), 1), labels)
    wrapped = private_training(
        model=model,
        optimizer=torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=0.5
        ),
        loader=DataLoader(dataset, batch_size=len(labels)),
        noise_multiplier=0.0,
        max_grad_norm=clip,
        grad_sample_mode=mode,
    )
    wrapped.optimizer.zero_grad()
    if features is not None:
        logits = wrapped.model(features)
    else:
        logits, _ = text_logits(wrapped.model)(batch)
    criterion_loss(wrapped.criterion)(logits, batch).backward()
    wrapped.optimizer.step()
    return model


def assert_same_update(
    start: nn.Module, batch: Batch, *, clip: float, mode: str = "ghost"
) -> None:
    hooks = one_step(copy.deepcopy(start), mode="hooks", batch=batch, clip=clip)
    other = one_step(copy.deepcopy(start), mode=mode, batch=batch, clip=clip)
    steps = []
    for (name, before), h, g in zip(
        start.named_parameters(), hooks.parameters(), other.parameters(), strict=True
    ):
        if not before.requires_grad:
            torch.testing.assert_close(g, before, rtol=0, atol=0, msg=name)
            continue
        steps.append((name, (h - before).detach(), (g - before).detach()))
    largest = max(float(step.abs().max()) for _, step, _ in steps)
    assert largest > 0.0  # the step did something
    for name, by_hooks, by_other in steps:  # the updates, not the weights, compared
        torch.testing.assert_close(
            by_other, by_hooks, rtol=1e-3, atol=1e-4 * largest, msg=name
        )


def fed_head(*, train_bias: bool) -> nn.Sequential:
    """The head mode trains: dropout (off here, so every mode sees one
    forward pass), then the classifier."""
    torch.manual_seed(0)
    head = nn.Sequential(nn.Dropout(0.0), nn.Linear(6, 3))
    head[1].bias.requires_grad_(train_bias)
    return head


@pytest.mark.parametrize("train_bias", [True, False])
@pytest.mark.parametrize("mode", ["ghost", "onepass"])
def test_every_mode_agrees_with_hooks_on_the_head(mode: str, train_bias: bool) -> None:
    assert_same_update(
        fed_head(train_bias=train_bias), feature_batch(), clip=0.05, mode=mode
    )


def test_ghost_and_hooks_agree_on_a_head() -> None:
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    assert_same_update(head, feature_batch(), clip=0.05)


@pytest.mark.parametrize("mode", ["ghost", "onepass"])
@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_every_mode_agrees_with_hooks_on_a_bert(finetune: str, mode: str) -> None:
    settings = settings_from_dict(small_config(f"finetune={finetune}"))
    model = build_classifier(settings.model, label_names=("a", "b", "c"), seed=0)
    trainable = prepare_for_finetuning(model, settings.finetune)
    generator = torch.Generator().manual_seed(1)
    batch = {
        "input_ids": torch.randint(1000, 2000, (6, 9), generator=generator),
        "attention_mask": torch.ones(6, 9, dtype=torch.long),
        "position_ids": torch.arange(9).repeat(6, 1),
        "labels": torch.tensor([0, 1, 2, 0, 1, 2]),
    }
    trainable.eval()  # no dropout: both modes must see the same forward pass
    assert_same_update(trainable, batch, clip=0.01, mode=mode)


@pytest.mark.parametrize("mode", ["ghost", "onepass"])
def test_counts_steps_and_trains_through_train_epochs(mode: str) -> None:
    features, labels = feature_batch()
    head = nn.Linear(6, 3)
    start = head.weight.detach().clone()
    wrapped = private_training(
        model=head,
        optimizer=torch.optim.SGD(head.parameters(), lr=0.1),
        loader=DataLoader(TensorDataset(features, labels), batch_size=4),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        grad_sample_mode=mode,
    )
    train_epochs(
        wrapped.model,
        wrapped.loader,
        wrapped.optimizer,
        logits_fn=lambda batch: (wrapped.model(batch[0]), batch[1]),
        epochs=2,
        loss_fn=criterion_loss(wrapped.criterion),
    )
    assert wrapped.steps() == 2 * len(wrapped.loader)
    assert not torch.equal(head.weight, start)


def test_unknown_grad_sample_mode_is_a_clear_error() -> None:
    head = nn.Linear(6, 3)
    features, labels = feature_batch()
    with pytest.raises(FedmodelError, match="grad_sample_mode"):
        private_training(
            model=head,
            optimizer=torch.optim.SGD(head.parameters(), lr=0.1),
            loader=DataLoader(TensorDataset(features, labels), batch_size=4),
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            grad_sample_mode="ghosts",
        )
