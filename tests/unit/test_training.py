"""The plain train and evaluate loops, on small linear heads over fixed features."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.privacy.engine import private_training
from fedmodel.training.loops import evaluate, feature_logits, train_epochs

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

DIM = 8
CLASSES = 3


def separable(per_class: int = 20, *, seed: int = 0) -> TensorDataset:
    """Class k sits at 3 * e_k, with small noise: a linear head can be perfect."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    features = 0.1 * torch.randn(len(labels), DIM, generator=generator)
    features[torch.arange(len(labels)), labels] += 3.0
    return TensorDataset(features, labels)


def seeded_loader(
    dataset: TensorDataset, *, batch_size: int, seed: int = 0
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def zero_head() -> nn.Linear:
    head = nn.Linear(DIM, CLASSES)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def empty_batch(dim: int = DIM) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(0, dim), torch.zeros(0, dtype=torch.long)


def test_training_a_head_on_separable_features_makes_it_perfect() -> None:
    data = separable()
    head = zero_head()
    eval_loader = DataLoader(data, batch_size=16)
    untrained = evaluate(head, eval_loader, logits_fn=feature_logits(head))
    # All-zero logits: argmax says class 0 for everything.
    assert untrained.accuracy == pytest.approx(1 / CLASSES)
    assert untrained.macro_f1 < 1.0

    loss = train_epochs(
        head,
        seeded_loader(data, batch_size=16),
        torch.optim.SGD(head.parameters(), lr=0.5),
        logits_fn=feature_logits(head),
        epochs=20,
    )

    trained = evaluate(head, eval_loader, logits_fn=feature_logits(head))
    assert math.isfinite(loss)
    assert trained.accuracy == 1.0
    assert trained.macro_f1 == 1.0
    assert trained.num_examples == len(data)
    assert trained.loss < untrained.loss == pytest.approx(math.log(CLASSES))


def test_evaluate_scores_the_whole_split_and_skips_empty_batches() -> None:
    batches = [
        (torch.tensor([[4.0, 0.0], [0.0, 4.0]]), torch.tensor([0, 0])),
        empty_batch(2),
        (torch.tensor([[0.0, 4.0], [0.0, 4.0]]), torch.tensor([1, 1])),
    ]
    identity = nn.Identity()
    result = evaluate(
        identity,
        batches,  # type: ignore[arg-type]
        logits_fn=feature_logits(identity),
    )
    # Truth 0 0 1 1, predicted 0 1 1 1: F1 2/3 for class 0, 4/5 for class 1.
    assert result.num_examples == 4
    assert result.accuracy == pytest.approx(0.75)
    assert result.macro_f1 == pytest.approx((2 / 3 + 4 / 5) / 2)
    logits = torch.cat([b[0] for b in batches])
    truth = torch.cat([b[1] for b in batches])
    expected_loss = float(nn.functional.cross_entropy(logits, truth))
    assert result.loss == pytest.approx(expected_loss)

    nothing = evaluate(
        identity,
        [empty_batch(2)],  # type: ignore[arg-type]
        logits_fn=feature_logits(identity),
    )
    assert nothing.num_examples == 0 and math.isnan(nothing.loss)


def test_a_label_past_the_models_classes_is_an_error_and_out_of_the_loss() -> None:
    # A test label that is no class of the model (id 2 past its 2 classes,
    # `TaskData`): scoring it raised IndexError in cross_entropy.
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
    truth = torch.tensor([0, 1, 2, 2])
    identity = nn.Identity()
    result = evaluate(
        identity,
        [(logits, truth)],  # type: ignore[arg-type]
        logits_fn=feature_logits(identity),
    )
    # Predicted 0 1 0 1: classes 0 and 1 F1 2/3 each (one right, one
    # wrong), label 2 F1 0 (never predicted).
    assert result.num_examples == 4
    assert result.accuracy == pytest.approx(0.5)
    assert result.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    expected = float(nn.functional.cross_entropy(logits[:2], truth[:2]))
    assert result.loss == pytest.approx(expected)
    unscored = evaluate(
        identity,
        [(logits[2:], truth[2:])],  # type: ignore[arg-type]
        logits_fn=feature_logits(identity),
    )
    assert unscored.accuracy == 0.0 and math.isnan(unscored.loss)


def test_empty_batches_step_but_do_not_count_in_the_loss() -> None:
    features, labels = separable(per_class=4).tensors
    first, second = (features[:6], labels[:6]), (features[6:], labels[6:])
    batches = [first, empty_batch(), second]
    head = nn.Linear(DIM, CLASSES)
    with torch.no_grad():
        expected = [
            float(nn.functional.cross_entropy(head(x), y)) for x, y in (first, second)
        ]

    # lr 0 keeps the weights, so the mean loss is exactly that of the two
    # non-empty batches; an empty batch counted as 0 would lower it.
    frozen_loss = train_epochs(
        head,
        batches,  # type: ignore[arg-type]
        torch.optim.SGD(head.parameters(), lr=0.0),
        logits_fn=feature_logits(head),
        epochs=1,
    )
    assert frozen_loss == pytest.approx(sum(expected) / 2)

    loss = train_epochs(
        head,
        batches,  # type: ignore[arg-type]
        torch.optim.SGD(head.parameters(), lr=0.5, momentum=0.9),
        logits_fn=feature_logits(head),
        epochs=3,
    )
    assert math.isfinite(loss)
    assert torch.isfinite(flat(head)).all()


def test_only_empty_batches_give_nan_loss_without_nan_weights() -> None:
    head = nn.Linear(DIM, CLASSES)
    loss = train_epochs(
        head,
        [empty_batch(), empty_batch()],  # type: ignore[arg-type]
        torch.optim.SGD(head.parameters(), lr=0.5),
        logits_fn=feature_logits(head),
        epochs=1,
    )
    assert math.isnan(loss)
    assert torch.isfinite(flat(head)).all()


def counting_empties(loader: Iterable[Any], empties: list[int]) -> Iterator[Any]:
    for batch in loader:
        if batch[1].numel() == 0:
            empties.append(1)
        yield batch


def test_dp_training_takes_a_noisy_step_on_every_poisson_batch() -> None:
    # One record per expected batch: about a third of Poisson batches are empty.
    data = separable(per_class=10)
    head = nn.Linear(DIM, CLASSES)
    start = flat(head).clone()
    wrapped = private_training(
        model=head,
        optimizer=torch.optim.SGD(head.parameters(), lr=0.1),
        loader=seeded_loader(data, batch_size=1),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
    )
    dp_head, optimizer, dp_loader, count_steps = (
        wrapped.model,
        wrapped.optimizer,
        wrapped.loader,
        wrapped.steps,
    )
    epochs = 3
    empties: list[int] = []
    loss = train_epochs(
        dp_head,
        counting_empties(dp_loader, empties),  # type: ignore[arg-type]
        optimizer,
        logits_fn=feature_logits(dp_head),
        epochs=1,
    )
    for _ in range(epochs - 1):
        train_epochs(
            dp_head,
            counting_empties(dp_loader, empties),  # type: ignore[arg-type]
            optimizer,
            logits_fn=feature_logits(dp_head),
            epochs=1,
        )
    assert empties, "expected Poisson sampling to draw empty batches"
    assert count_steps() == epochs * len(dp_loader)
    assert math.isfinite(loss)
    assert torch.isfinite(flat(head)).all()
    assert not torch.equal(flat(head), start)


def test_an_empty_dp_batch_is_a_pure_noise_step() -> None:
    head = nn.Linear(DIM, CLASSES)
    data = separable(per_class=4)
    wrapped = private_training(
        model=head,
        optimizer=torch.optim.SGD(head.parameters(), lr=0.1),
        loader=seeded_loader(data, batch_size=4),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
    )
    dp_head, optimizer, count_steps = wrapped.model, wrapped.optimizer, wrapped.steps
    start = flat(head).clone()
    loss = train_epochs(
        dp_head,
        [empty_batch(), empty_batch()],  # type: ignore[arg-type]
        optimizer,
        logits_fn=feature_logits(dp_head),
        epochs=1,
    )
    assert math.isnan(loss)
    assert count_steps() == 2
    moved = flat(head) - start
    assert torch.isfinite(moved).all() and moved.abs().sum() > 0


def train_from(
    start: nn.Linear, data: TensorDataset, *, proximal_mu: float
) -> nn.Linear:
    head = copy.deepcopy(start)
    train_epochs(
        head,
        seeded_loader(data, batch_size=8, seed=1),
        torch.optim.SGD(head.parameters(), lr=0.2),
        logits_fn=feature_logits(head),
        epochs=5,
        proximal_mu=proximal_mu,
    )
    return head


def test_fedprox_pull_keeps_weights_closer_to_the_start() -> None:
    torch.manual_seed(0)
    start = nn.Linear(DIM, CLASSES)
    data = separable(per_class=10, seed=3)

    free = train_from(start, data, proximal_mu=0.0)
    pulled = train_from(start, data, proximal_mu=1.0)
    again = train_from(start, data, proximal_mu=0.0)

    assert torch.equal(flat(free), flat(again))  # same seed, same path
    free_distance = float((flat(free) - flat(start)).norm())
    pulled_distance = float((flat(pulled) - flat(start)).norm())
    assert 0.0 < pulled_distance < 0.9 * free_distance
