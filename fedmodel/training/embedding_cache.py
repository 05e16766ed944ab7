"""Pooled text features from a frozen encoder, computed once and cached.

In head mode the encoder never changes, so a party embeds its texts once and
trains or evaluates the classification layer on the features. The tokenizer,
the data helpers and transformers are imported only when texts are embedded:
a round that reads stored features does not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.training.feature_store import (
    StoredFeatures,
    features_path,
    read_features,
    write_features,
)
from fedmodel.training.fingerprint import data_fingerprint
from fedmodel.training.loops import embed_texts

if TYPE_CHECKING:
    import datasets

    from fedmodel.data.tokenization import Encoded
    from fedmodel.model.classifier import PooledBertForSequenceClassification

INFERENCE_BATCH = 128


def cached_features(
    settings: RunSettings,
    *,
    model: PooledBertForSequenceClassification,
    split: datasets.Dataset,
    state_dir: Path,
    encoded: list[Encoded] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of the client's records, computed once for these records.

    The encoder is frozen in head mode, so its features never change; they are
    kept in the client's own state directory, never sent, keyed by the
    encoder's files, `task.max_length` and the records' fingerprint
    (`features_path`). A site's state directory outlives runs, so a later
    run on the same records and encoder embeds nothing. `encoded` is the
    split's texts as already tokenized (`RoundRecords`), or None.
    """
    fingerprint = data_fingerprint(split)
    cached = stored_features(settings, fingerprint=fingerprint, state_dir=state_dir)
    if cached is not None:
        return cached.features, cached.labels
    features, labels = embed_split(settings, model=model, split=split, encoded=encoded)
    write_features(
        features_path(settings, fingerprint=fingerprint, state_dir=state_dir),
        StoredFeatures(
            features=features,
            labels=labels,
            fingerprint=fingerprint,
            dropout=float(model.dropout.p),
        ),
    )
    return features, labels


def stored_features(
    settings: RunSettings, *, fingerprint: str, state_dir: Path
) -> StoredFeatures | None:
    """The features a round stored for exactly the records of `fingerprint`, or None.

    `fingerprint` is the records' `data_fingerprint`. Read without the
    encoder: a round that finds them trains the head alone.
    """
    path = features_path(settings, fingerprint=fingerprint, state_dir=state_dir)
    stored = read_features(path)
    if stored is None or stored.fingerprint != fingerprint:
        return None
    return stored


def length_sorted_loader(
    settings: RunSettings,
    split: datasets.Dataset,
    *,
    encoded: list[Encoded] | None = None,
) -> DataLoader:
    """A loader over a split's texts in length order, for inference.

    Batching texts of similar length keeps dynamic padding short. `encoded`
    is the split's texts as already tokenized, in the split's order, or None.
    """
    from fedmodel.data.tokenization import length_order, make_text_loader
    from fedmodel.model.load import load_tokenizer

    # One query, as the client's `text_loader` reads its records.
    records = split[:]
    texts: list[str] = records["text"]
    if not texts:
        raise FedmodelError("cannot run the model on an empty split")
    labels: list[int] = records["label"]
    order = length_order(texts)
    return make_text_loader(
        load_tokenizer(settings.model),
        [texts[i] for i in order],
        [labels[i] for i in order],
        max_length=settings.task.max_length,
        batch_size=INFERENCE_BATCH,
        shuffle=False,
        seed=settings.seed,
        encoded=None if encoded is None else [encoded[i] for i in order],
    )


def embed_split(
    settings: RunSettings,
    *,
    model: PooledBertForSequenceClassification,
    split: datasets.Dataset,
    encoded: list[Encoded] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and labels of a split's texts (in length order).

    `encoded` is the split's texts as already tokenized, or None.
    """
    return embed_texts(model, length_sorted_loader(settings, split, encoded=encoded))
