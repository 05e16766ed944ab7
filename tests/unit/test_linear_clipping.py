"""One-pass clipping of a linear head: each example's gradient is clipped exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.errors import FedmodelError
from fedmodel.privacy import private_training
from fedmodel.privacy.linear_clipping import LinearClipping
from fedmodel.training.loops import Batch, criterion_loss, train_epochs


def head_and_batch(
    *, train_bias: bool
) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    head = nn.Sequential(nn.Dropout(0.5), nn.Linear(5, 4))
    head[1].bias.requires_grad_(train_bias)
    features = (
        torch.randn(12, 5, generator=generator) * torch.logspace(-2, 2, 12)[:, None]
    )
    labels = torch.randint(0, 4, (12,), generator=generator)
    return head, features, labels


def clipped_sum_one_by_one(
    layer: nn.Linear, inputs: torch.Tensor, labels: torch.Tensor, *, clip: float
) -> list[torch.Tensor]:
    """The reference: each example's own backward pass, clipped, summed."""
    params = [p for p in layer.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for x, y in zip(inputs, labels, strict=True):
        loss = nn.functional.cross_entropy(layer(x[None]), y[None])
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for t, g in zip(total, grads, strict=True):
            t += factor * g
    return total


@pytest.mark.parametrize("train_bias", [True, False])
def test_the_clipped_sum_is_each_example_clipped_then_summed(train_bias: bool) -> None:
    head, features, labels = head_and_batch(train_bias=train_bias)
    clipping = LinearClipping(head, max_grad_norm=0.3)
    head.train()  # dropout on: the layer's own (dropped) inputs are clipped
    seen: list[torch.Tensor] = []
    head[1].register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    clipping.criterion(head(features), labels).backward()
    expected = clipped_sum_one_by_one(head[1], seen[0].detach(), labels, clip=0.3)
    trained = [p for p in head[1].parameters() if p.requires_grad]
    assert len(trained) == (2 if train_bias else 1)
    for got, want in zip(trained, expected, strict=True):
        assert got.grad is not None
        torch.testing.assert_close(got.grad, want, rtol=1e-5, atol=1e-7)
    assert head[1].bias.grad is None or train_bias


def test_no_example_moves_the_sum_by_more_than_the_clip() -> None:
    head, features, labels = head_and_batch(train_bias=True)
    head.eval()
    clipping = LinearClipping(head, max_grad_norm=0.3)
    big = features[-1:] * 1e4  # an outlier whose raw gradient is huge
    clipping.criterion(head(big), labels[-1:]).backward()
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in head.parameters()))
    assert 0.29 < float(norm) <= 0.3 + 1e-6


def test_logits_that_are_not_the_layers_output_are_refused() -> None:
    head, features, labels = head_and_batch(train_bias=True)
    clipping = LinearClipping(head, max_grad_norm=1.0)
    with pytest.raises(FedmodelError, match="not"):
        clipping.criterion(head(features) * 2.0, labels)


def test_a_loss_from_an_earlier_forward_pass_is_refused() -> None:
    # Its inputs are gone: another batch's records must not enter the sum.
    head, features, labels = head_and_batch(train_bias=True)
    clipping = LinearClipping(head, max_grad_norm=1.0)
    stale = clipping.criterion(head(features[:6]), labels[:6])
    head(features[6:])
    with pytest.raises(FedmodelError, match="latest forward pass"):
        stale.backward()
    fresh = clipping.criterion(head(features[6:]), labels[6:])
    fresh.backward()
    with pytest.raises(FedmodelError, match="latest forward pass"):
        fresh.backward()  # a second backward would count the batch twice


def test_a_model_trained_beyond_one_linear_layer_is_refused() -> None:
    mlp = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(FedmodelError, match="one linear layer"):
        LinearClipping(mlp, max_grad_norm=1.0)
    with pytest.raises(FedmodelError, match="one linear layer"):
        private_training(
            model=mlp,
            optimizer=torch.optim.SGD(mlp.parameters(), lr=0.1),
            loader=DataLoader(
                TensorDataset(torch.zeros(4, 6), torch.zeros(4, dtype=torch.long)),
                batch_size=2,
            ),
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            grad_sample_mode="linear",
        )


def test_empty_poisson_batches_still_take_a_noisy_step() -> None:
    # Four records at sample rate 1/4: many drawn batches are empty, and each
    # must still be a (pure-noise) step, as the accounting assumes.
    head, features, labels = head_and_batch(train_bias=False)
    wrapped = private_training(
        model=head,
        optimizer=torch.optim.SGD([head[1].weight], lr=0.1),
        loader=DataLoader(TensorDataset(features[:4], labels[:4]), batch_size=1),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        grad_sample_mode="linear",
    )
    sizes: list[int] = []

    def logits_of(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        sizes.append(len(batch[1]))
        return wrapped.model(batch[0]), batch[1]

    bias = head[1].bias.detach().clone()
    train_epochs(
        wrapped.model,
        wrapped.loader,
        wrapped.optimizer,
        logits_fn=logits_of,
        epochs=10,
        loss_fn=criterion_loss(wrapped.criterion),
    )
    assert wrapped.steps() == 40
    assert len(sizes) < 40  # empty batches skip the model but not the step
    assert torch.isfinite(head[1].weight).all()
    assert torch.equal(head[1].bias, bias)  # held: no gradient, no noise
