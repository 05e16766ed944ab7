"""Warm-start the classification head on labelled records the server holds.

The server's transfer split belongs to no client, so fitting the head on it
before round 1 costs no client any privacy: it only changes the public
starting point that every client's DP-SGD then refines.
"""

from __future__ import annotations

import datasets
import torch
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import RunSettings
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.finetune import classification_head
from fedmodel.training.embedding_cache import embed_split
from fedmodel.training.loops import feature_logits, train_epochs


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
