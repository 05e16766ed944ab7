"""What server distillation trains the student on: the teacher's targets.

The teacher labels the server's texts and their augmented copies once, before
the first epoch; the student's loader names each text by its row in those
targets. `benchmarks/distill_epoch.py` builds them with `distill_inputs` too,
so it times the set-up a run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from fedmodel.config import DistillSettings
from fedmodel.data.tokenization import length_order, make_text_loader
from fedmodel.distill.augment import augment_texts
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.device import model_device
from fedmodel.training.loops import text_inputs

TARGET_BATCH = 128


@dataclass(frozen=True)
class DistillInputs:
    """What the student trains on: texts, the teacher's targets, their loader."""

    texts: list[str]  # the server's texts and their augmented copies
    targets: tuple[torch.Tensor, torch.Tensor]  # teacher logits, pooled vectors
    loader: DataLoader  # its "labels" are row numbers into `targets`


def distill_inputs(
    teacher: PooledBertForSequenceClassification,
    texts: Sequence[str],
    *,
    tokenizer: PreTrainedTokenizerBase,
    settings: DistillSettings,
    max_length: int,
    seed: int,
) -> DistillInputs:
    """Server distillation's set-up: augmented texts, the teacher's targets, a loader.

    The teacher reads the task's token limit, the student at most its own.
    """
    augmented = augment_texts(texts, copies=settings.augment_copies, seed=seed)
    targets = teacher_targets(
        teacher, augmented, tokenizer=tokenizer, max_length=max_length, seed=seed
    )
    loader = make_text_loader(
        tokenizer,
        augmented,
        list(range(len(augmented))),
        max_length=settings.student.max_length or max_length,
        batch_size=settings.batch_size,
        shuffle=True,
        seed=seed,
    )
    return DistillInputs(texts=augmented, targets=targets, loader=loader)


@torch.no_grad()
def teacher_targets(
    teacher: PooledBertForSequenceClassification,
    texts: Sequence[str],
    *,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher logits and pooled vectors for every text, in input order.

    The texts run in length order (little padding per batch), and the rows
    are put back in input order at the end.
    """
    teacher.eval()
    order, loader = targets_loader(
        texts, tokenizer=tokenizer, max_length=max_length, seed=seed
    )
    logits, vectors = [], []
    for batch in loader:
        pooled = teacher.embed(**text_inputs(batch, model_device(teacher)))
        vectors.append(pooled)
        logits.append(teacher.classify(pooled))
    in_order = torch.tensor(order).argsort()
    return torch.cat(logits)[in_order], torch.cat(vectors)[in_order]


def targets_loader(
    texts: Sequence[str],
    *,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    seed: int,
) -> tuple[list[int], DataLoader]:
    """The batches the teacher labels `texts` in, and their order in `texts`.

    In length order, so each batch pads little; `order[i]` is the row of
    `texts` that the i-th text of the loader is.
    """
    order = length_order(texts)
    loader = make_text_loader(
        tokenizer,
        [texts[i] for i in order],
        None,
        max_length=max_length,
        batch_size=TARGET_BATCH,
        shuffle=False,
        seed=seed,
    )
    return order, loader
