"""Plain PyTorch train and evaluate loops; nothing here knows about Flower.

A batch is either a dict from the text collator (input_ids, attention_mask,
token_type_ids, position_ids, labels) or a (features, labels) pair when the
encoder is frozen and texts were embedded once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.optim import SGD, Adam, AdamW, Optimizer
from torch.utils.data import DataLoader

from fedmodel.config import FinetuneSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.device import batch_to, model_device

Batch = Mapping[str, torch.Tensor] | tuple[torch.Tensor, torch.Tensor]
LogitsFn = Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]


class Loss(Protocol):
    """What a training step backpropagates.

    A tensor, or a DP-SGD wrapper of one whose `backward()` leaves the clipped
    per-example sum (ghost and onepass clipping).
    """

    def detach(self) -> torch.Tensor:
        """The loss's value, outside any graph."""
        ...

    def backward(self) -> None:
        """Put the gradient (under DP-SGD the clipped sum) in `.grad`."""
        ...


# A batch's loss from the model's logits and the batch itself.
LossFn = Callable[[torch.Tensor, Batch], Loss]

# Opacus hooks a head trained on fixed features, whose inputs need no gradient;
# PyTorch warns about that on every backward pass, harmlessly.
warnings.filterwarnings("ignore", message="Full backward hook is firing")

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def text_inputs(
    batch: Mapping[str, torch.Tensor], device: torch.device | None = None
) -> dict[str, torch.Tensor]:
    """A text batch's model inputs (no labels), on `device` when one is given."""
    inputs = {key: batch[key] for key in TEXT_INPUTS if key in batch}
    return inputs if device is None else batch_to(inputs, device)


@dataclass(frozen=True)
class EvalResult:
    """Classification quality on one split.

    `predicted` is each example's most probable label, in the loader's order:
    the export's report reuses its pass of a model over the test split.
    """

    accuracy: float
    macro_f1: float
    loss: float
    num_examples: int
    predicted: torch.Tensor = field(compare=False, repr=False)


def text_logits(model: nn.Module) -> LogitsFn:
    """Logits of a full classifier on a tokenized text batch (on its device)."""
    device = model_device(model)

    def run(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(batch, Mapping)
        logits = model(**text_inputs(batch, device)).logits
        return logits, batch["labels"].to(device)

    return run


def feature_logits(head: nn.Module) -> LogitsFn:
    """Logits of the classification layer alone on pre-computed features."""
    device = model_device(head)

    def run(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(batch, tuple | list)
        features, labels = batch
        return head(features.to(device)), labels.to(device)

    return run


def criterion_loss(criterion: Callable[[torch.Tensor, torch.Tensor], Loss]) -> LossFn:
    """A `train_epochs` loss from a (logits, labels) criterion.

    Under ghost clipping the criterion is Opacus' wrapper: what it returns
    takes DP-SGD's two backward passes when `train_epochs` calls `backward()`
    (under onepass clipping, one).
    """

    def loss(logits: torch.Tensor, batch: Batch) -> Loss:
        # The batch's labels are where the loader left them; logits_fn moved
        # the inputs (and its own copy of the labels) to the model's device.
        return criterion(logits, _batch_labels(batch).to(logits.device))

    return loss


def build_optimizer(
    params: Iterable[nn.Parameter], finetune: FinetuneSettings
) -> Optimizer:
    """The local optimizer named in the finetune settings."""
    trainable = [p for p in params if p.requires_grad]
    name = finetune.optimizer
    if name == "sgd":
        return SGD(
            trainable,
            lr=finetune.learning_rate,
            momentum=finetune.momentum,
            weight_decay=finetune.weight_decay,
        )
    if name == "adam":
        return Adam(
            trainable, lr=finetune.learning_rate, weight_decay=finetune.weight_decay
        )
    if name == "adamw":
        return AdamW(
            trainable, lr=finetune.learning_rate, weight_decay=finetune.weight_decay
        )
    raise FedmodelError(
        f"finetune.optimizer must be 'sgd', 'adam' or 'adamw', got {name!r}"
    )


def train_epochs(
    model: nn.Module,
    loader: DataLoader,
    optimizer: Optimizer,
    *,
    logits_fn: LogitsFn,
    epochs: int,
    proximal_mu: float = 0.0,
    loss_fn: LossFn | None = None,
) -> float:
    """Train for whole epochs; return the mean loss over non-empty batches.

    The loss is cross-entropy against the batch's labels unless `loss_fn`
    gives another (a distillation loss). Every batch takes one optimizer step,
    even an empty one drawn by Poisson sampling: DP-SGD's accounting assumes a
    noisy step per drawn batch. With
    `proximal_mu` > 0 (FedProx) each step is followed by a pull towards the
    starting weights; that pull uses no records, so it costs no privacy.
    """
    anchor = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            if _batch_labels(batch).numel() == 0:
                _empty_step(optimizer)
            else:
                logits, labels = logits_fn(batch)
                loss: Loss
                if loss_fn is None:
                    loss = nn.functional.cross_entropy(logits, labels)
                else:
                    loss = loss_fn(logits, batch)
                losses.append(float(loss.detach()))
                loss.backward()
                optimizer.step()
            if proximal_mu > 0:
                _proximal_pull(model, anchor, step=proximal_mu * _lr(optimizer))
    return float(np.mean(losses)) if losses else float("nan")


def _batch_labels(batch: Batch) -> torch.Tensor:
    return batch["labels"] if isinstance(batch, Mapping) else batch[1]


def _empty_step(optimizer: Optimizer) -> None:
    # BERT cannot run a zero-row batch, so the model is skipped; the step still
    # happens (pure noise under DP-SGD, as the accounting assumes). Opacus reads
    # per-example gradients, of which this batch has none.
    for group in optimizer.param_groups:
        for param in group["params"]:
            if hasattr(param, "grad_sample"):
                param.grad_sample = param.new_zeros((0, *param.shape))
            param.grad = torch.zeros_like(param)
    optimizer.step()


def _lr(optimizer: Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _proximal_pull(
    model: nn.Module, anchor: list[torch.Tensor], *, step: float
) -> None:
    trainable = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for param, start in zip(trainable, anchor, strict=True):
            param.sub_(step * (param - start))


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, *, logits_fn: LogitsFn
) -> EvalResult:
    """Accuracy, macro-F1 and mean loss over a whole split.

    A label id past the model's classes (a test label that is no class,
    `TaskData`) is never predicted: an error to the accuracy, a class of
    F1 0 to the macro-F1. The loss, which such a record has none of, is the
    mean over the others (nan where none is left).
    """
    model.eval()
    predictions: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    loss_sum, scored = 0.0, 0
    for batch in loader:
        logits, labels = logits_fn(batch)
        if labels.numel() == 0:
            continue
        classes = labels < logits.shape[-1]
        loss_sum += float(
            nn.functional.cross_entropy(
                logits[classes], labels[classes], reduction="sum"
            )
        )
        scored += int(classes.sum())
        predictions.append(logits.argmax(dim=-1).cpu().numpy())
        truths.append(labels.cpu().numpy())
    if not truths:
        return EvalResult(
            accuracy=0.0,
            macro_f1=0.0,
            loss=float("nan"),
            num_examples=0,
            predicted=torch.zeros(0, dtype=torch.long),
        )
    # Imported here: a site's training round (a fresh process per message in a
    # deployment) never evaluates, and scikit-learn takes seconds to import.
    from sklearn.metrics import f1_score

    predicted = np.concatenate(predictions)
    truth = np.concatenate(truths)
    return EvalResult(
        accuracy=float((predicted == truth).mean()),
        macro_f1=float(f1_score(truth, predicted, average="macro")),
        loss=loss_sum / scored if scored else float("nan"),
        num_examples=len(truth),
        predicted=torch.from_numpy(predicted),
    )


@torch.no_grad()
def embed_texts(
    model: nn.Module, loader: DataLoader
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and labels of every text batch, with the encoder frozen.

    The encoder runs on its own device; the features come back to the CPU.
    """
    model.eval()
    device = model_device(model)
    features: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for batch in loader:
        inputs = text_inputs(batch, device)
        features.append(model.embed(**inputs).cpu())  # type: ignore[operator]
        labels.append(batch["labels"])
    return torch.cat(features), torch.cat(labels)
