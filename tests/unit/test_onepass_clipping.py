"""One-pass clipping: each example's gradient is clipped exactly, in one pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.errors import FedmodelError
from fedmodel.model.finetune import prepare_for_finetuning
from fedmodel.model.load import build_classifier
from fedmodel.privacy.engine import private_training
from fedmodel.privacy.onepass_clipping import OnePassClipping
from fedmodel.training.loops import Batch, criterion_loss, text_logits, train_epochs
from tests.conftest import small_settings


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
    model: nn.Module, inputs: list[Batch], labels: torch.Tensor, *, clip: float
) -> list[torch.Tensor]:
    """The reference: each example's own backward pass, clipped, summed."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for example, label in zip(inputs, labels, strict=True):
        logits = model(example) if isinstance(example, torch.Tensor) else None
        if logits is None:
            logits, _ = text_logits(model)(example)
        loss = nn.functional.cross_entropy(logits, label[None])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = tuple(
            torch.zeros_like(p) if g is None else g
            for p, g in zip(params, grads, strict=True)
        )
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for t, g in zip(total, grads, strict=True):
            t += factor * g
    return total


def assert_grads_match(model: nn.Module, expected: list[torch.Tensor]) -> None:
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for (name, got), want in zip(trained, expected, strict=True):
        assert got.grad is not None, name
        torch.testing.assert_close(got.grad, want, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("train_bias", [True, False])
def test_the_heads_clipped_sum_is_each_example_clipped_then_summed(
    train_bias: bool,
) -> None:
    head, features, labels = head_and_batch(train_bias=train_bias)
    clipping = OnePassClipping(head, max_grad_norm=0.3)
    head.train()  # dropout on: the layer's own (dropped) inputs are clipped
    seen: list[torch.Tensor] = []
    head[1].register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    clipping.criterion(head(features), labels).backward()
    expected = clipped_sum_one_by_one(
        head[1], list(seen[0].detach()[:, None]), labels, clip=0.3
    )
    assert_grads_match(head[1], expected)
    assert head[1].bias.grad is None or train_bias


class TokenModel(nn.Module):
    """Every layer kind onepass clips, on token sequences: an embedding with a
    padding row, a linear layer and a layer norm at each position, mean
    pooling, and a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 6, padding_idx=0)
        self.dense = nn.Linear(6, 7)
        self.norm = nn.LayerNorm(7)
        self.classifier = nn.Linear(7, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(torch.tanh(self.dense(self.embedding(ids))))
        return self.classifier(hidden.mean(dim=1))


@pytest.mark.parametrize("clip", [0.05, 1e6])
def test_every_layer_kinds_clipped_sum_matches_one_example_at_a_time(
    clip: float,
) -> None:
    torch.manual_seed(0)
    model = TokenModel()
    ids = torch.randint(1, 20, (5, 4))
    ids[0, 2:] = 0  # padding: the embedding's padding row gets no gradient
    ids[1, :] = 7  # one token four times: its row sums four positions
    labels = torch.tensor([0, 1, 2, 0, 1])
    clipping = OnePassClipping(model, max_grad_norm=clip)
    clipping.criterion(model(ids), labels).backward()
    expected = clipped_sum_one_by_one(model, list(ids[:, None]), labels, clip=clip)
    assert_grads_match(model, expected)
    assert torch.count_nonzero(model.embedding.weight.grad[0]) == 0


@pytest.mark.parametrize(
    "overrides",
    [("finetune=full",), ("finetune=full", "finetune.train_embeddings=true")],
)
def test_a_berts_clipped_sum_matches_one_example_at_a_time(
    overrides: tuple[str, ...],
) -> None:
    settings = small_settings(*overrides)
    model = build_classifier(settings.model, label_names=("a", "b", "c"), seed=0)
    trainable = prepare_for_finetuning(model, settings.finetune)
    trainable.eval()  # no dropout: the reference sees the same forward pass
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[0, 4:] = 0
    batch = {
        "input_ids": torch.randint(1000, 2000, (4, 7), generator=generator) * mask,
        "attention_mask": mask,
        "token_type_ids": torch.zeros(4, 7, dtype=torch.long),
        "position_ids": torch.arange(7).repeat(4, 1),
        "labels": torch.tensor([0, 1, 2, 0]),
    }
    clipping = OnePassClipping(trainable, max_grad_norm=0.05)
    logits, labels = text_logits(trainable)(batch)
    clipping.criterion(logits, labels).backward()
    examples = [{key: rows[i : i + 1] for key, rows in batch.items()} for i in range(4)]
    expected = clipped_sum_one_by_one(trainable, examples, labels, clip=0.05)
    assert_grads_match(trainable, expected)


def test_an_empty_batch_adds_a_zero_sum() -> None:
    torch.manual_seed(0)
    model = TokenModel()
    clipping = OnePassClipping(model, max_grad_norm=1.0)
    no_ids, no_labels = torch.zeros(0, 4, dtype=torch.long), torch.zeros(0).long()
    clipping.criterion(model(no_ids), no_labels).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.count_nonzero(param.grad) == 0, name


def test_no_example_moves_the_sum_by_more_than_the_clip() -> None:
    head, features, labels = head_and_batch(train_bias=True)
    head.eval()
    clipping = OnePassClipping(head, max_grad_norm=0.3)
    big = features[-1:] * 1e4  # an outlier whose raw gradient is huge
    clipping.criterion(head(big), labels[-1:]).backward()
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in head.parameters()))
    assert 0.29 < float(norm) <= 0.3 + 1e-6


def test_logits_that_are_not_a_layers_output_are_refused() -> None:
    head, features, labels = head_and_batch(train_bias=True)
    clipping = OnePassClipping(head, max_grad_norm=1.0)
    with pytest.raises(FedmodelError, match="these logits are not"):
        clipping.criterion(head(features) * 2.0, labels)


def test_a_loss_from_an_earlier_forward_pass_is_refused() -> None:
    # Its inputs are gone: another batch's records must not enter the sum.
    head, features, labels = head_and_batch(train_bias=True)
    clipping = OnePassClipping(head, max_grad_norm=1.0)
    stale = clipping.criterion(head(features[:6]), labels[:6])
    head(features[6:])
    with pytest.raises(FedmodelError, match="latest forward pass"):
        stale.backward()
    fresh = clipping.criterion(head(features[6:]), labels[6:])
    fresh.backward()
    with pytest.raises(FedmodelError, match="latest forward pass"):
        fresh.backward()  # a second backward would count the batch twice


def test_an_evaluation_pass_does_not_replace_the_training_pass() -> None:
    head, features, labels = head_and_batch(train_bias=True)
    head.eval()
    clipping = OnePassClipping(head, max_grad_norm=1.0)
    loss = clipping.criterion(head(features[:6]), labels[:6])
    with torch.no_grad():
        head(features[6:])
    loss.backward()
    assert head[1].weight.grad is not None


def test_a_layer_called_twice_in_one_forward_pass_is_refused() -> None:
    # Its two uses' gradients add up per example; the norm would miss the cross term.
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    clipping = OnePassClipping(model, max_grad_norm=1.0)
    loss = clipping.criterion(model(torch.randn(3, 4)), torch.tensor([0, 1, 2]))
    with pytest.raises(FedmodelError, match=r"\['0'\] ran more than once"):
        loss.backward()


def test_an_input_shared_by_the_batch_is_refused() -> None:
    class SharedPositions(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.positions = nn.Embedding(5, 3)
            self.classifier = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shared = self.positions(torch.arange(x.shape[1])[None])  # [1, L, 3]
            return self.classifier((x + shared).mean(dim=1))

    model = SharedPositions()
    clipping = OnePassClipping(model, max_grad_norm=1.0)
    loss = clipping.criterion(model(torch.randn(4, 5, 3)), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(FedmodelError, match="'positions' saw inputs of shape"):
        loss.backward()


def test_layers_it_cannot_clip_are_refused_when_wrapped() -> None:
    conv = nn.Sequential(nn.Conv1d(2, 2, 3), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(FedmodelError, match="'0' is a Conv1d"):
        OnePassClipping(conv, max_grad_norm=1.0)
    with pytest.raises(FedmodelError, match="'0' is a Conv1d"):
        private_training(
            model=conv,
            optimizer=torch.optim.SGD(conv.parameters(), lr=0.1),
            loader=DataLoader(
                TensorDataset(torch.zeros(4, 2, 6), torch.zeros(4, dtype=torch.long)),
                batch_size=2,
            ),
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            grad_sample_mode="onepass",
        )
    tied = nn.Sequential(nn.Embedding(5, 5), nn.Linear(5, 5))
    tied[1].weight = tied[0].weight
    with pytest.raises(FedmodelError, match="'1' shares a trainable parameter"):
        OnePassClipping(tied, max_grad_norm=1.0)


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
        grad_sample_mode="onepass",
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
