"""The public starting point: label names, then records the server holds.

Before round 1 the head is set from the encoder's embeddings of the label
names (`model/label_init.py`: no record read), then, where the task has a
transfer split, fitted on it. The server's transfer split belongs to no
client, so neither step costs any client privacy: they only change the public
starting point that every client's DP-SGD then refines.
"""

from __future__ import annotations

import logging

import datasets
import torch
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import RunSettings
from fedmodel.data.files import label_texts
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.finetune import classification_head
from fedmodel.model.label_init import init_head_from_label_names, wordless_label
from fedmodel.training.embedding_cache import embed_split
from fedmodel.training.loops import feature_logits, train_epochs

log = logging.getLogger(__name__)


def public_start(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    label_names: tuple[str, ...],
    transfer: datasets.Dataset | None,
) -> None:
    """Set the head from public information only, before any client trains.

    Label-name initialisation (when `label_init` is on and every label's name,
    or its description in `task.label_descriptions`, has a letter in it) for
    every task, then the warm start on the server's transfer split where there
    is one holding two labels or more.
    """
    if settings.label_init:
        _label_start(classifier, settings=settings, label_names=label_names)
    if transfer is None:
        log.info(
            "the server holds no labelled records (a files task without "
            "task.validation_file): no warm start and no check against the "
            "start, the last round is kept. At strict budgets a small labelled "
            "file the server may hold, set as task.validation_file, helps most; see "
            "docs/strict-budgets.md"
        )
    elif settings.warm_start.enabled and len(set(transfer["label"])) < 2:
        # A head fitted to one label answers it for every text: worse than
        # the label-name start, and the model choice would then favour it.
        log.warning(
            "no warm start: the %d server-held records it would be fitted on "
            "hold a single label, %r; the head keeps its public start. Give "
            "task.validation_file more records of each label",
            len(transfer),
            label_names[transfer["label"][0]] if len(transfer) else None,
        )
    elif settings.warm_start.enabled:
        loss = warm_start_head(classifier, settings=settings, transfer=transfer)
        log.info(
            "warm start: head fitted on the server's %d transfer records (loss %.3f)",
            len(transfer),
            loss,
        )


def _label_start(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    label_names: tuple[str, ...],
) -> None:
    """The zero-shot head from the label names or descriptions, if all have letters."""
    texts = label_texts(settings.task, label_names)
    described = settings.task.label_descriptions is not None
    wordless = wordless_label(texts)
    if wordless is not None:
        log.warning(
            "label %s %r has no letter in it, so the head is not initialised "
            "from the labels (numbers tell the encoder nothing, and a start "
            "built from them trains worse than an untrained head). To have the "
            "zero-shot start, %s",
            "description" if described else "name",
            wordless,
            "describe each label in words"
            if described
            else "write each class's name in the label column, or describe "
            "each label in a file set as task.label_descriptions",
        )
        return
    init_head_from_label_names(classifier, settings=settings.model, label_names=texts)
    log.info(
        "head initialised from the %d label %s",
        len(texts),
        f"descriptions in {settings.task.label_descriptions}" if described else "names",
    )


def warm_start_head(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    transfer: datasets.Dataset,
) -> float:
    """Fit the head on the transfer split's pooled features; return the loss.

    Uses the initial (public) encoder, so it applies to every fine-tuning mode:
    LoRA adapters start as the identity and full fine-tuning starts from the
    same encoder.
    """
    warm = settings.warm_start
    features, labels = embed_split(settings, model=classifier, split=transfer)
    head = classification_head(classifier)
    loader = DataLoader(
        TensorDataset(features, labels),
        batch_size=warm.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    optimizer = torch.optim.SGD(head.parameters(), lr=warm.learning_rate, momentum=0.9)
    return train_epochs(
        head, loader, optimizer, logits_fn=feature_logits(head), epochs=warm.epochs
    )
