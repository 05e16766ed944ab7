"""Canary records for auditing: random texts with random labels, planted in one client.

`audit.canaries=k` plants k canaries in client `audit.client`'s training split
before training; `audit.reference_canaries` more are drawn from the same
generator and never planted. Which canaries were planted is therefore decided
at random, as DP auditing needs, and `fedmodel audit` regenerates both sets
from the run's config to compare how the final model treats them.
"""

from __future__ import annotations

import datasets
import numpy as np

from fedmodel.config import RunSettings
from fedmodel.data.splits import build_split

WORDS_PER_CANARY = 8
# Keeps the canary generator's stream apart from every other use of the seed.
_CANARY_STREAM = 0xCA4A27


def canary_splits(
    settings: RunSettings, *, client_records: datasets.Dataset, num_labels: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Return (planted, reference) canaries for the audited client.

    Each canary is `WORDS_PER_CANARY` words drawn at random from the client's
    own vocabulary, with a label drawn uniformly: a record the model can only
    fit by memorising it. Deterministic in the run seed and the client's records.
    """
    audit = settings.audit
    total = audit.canaries + audit.reference_canaries
    rng = np.random.default_rng([settings.seed, _CANARY_STREAM, audit.client])
    vocabulary = sorted(
        {word for text in client_records["text"] for word in str(text).split()}
    )
    if not vocabulary:
        vocabulary = ["canary"]
    word_ids = rng.integers(len(vocabulary), size=(total, WORDS_PER_CANARY))
    texts = [" ".join(vocabulary[i] for i in row) for row in word_ids]
    labels = rng.integers(num_labels, size=total).tolist()
    label_names = client_records.features["label"].names
    canaries = build_split(texts, labels, label_names=label_names)
    planted = canaries.select(range(audit.canaries))
    reference = canaries.select(range(audit.canaries, total))
    return planted, reference


def with_canaries(
    train: datasets.Dataset, planted: datasets.Dataset
) -> datasets.Dataset:
    """The client's training split with the planted canaries appended."""
    return datasets.concatenate_datasets(
        [train.select_columns(["text", "label"]), planted]
    )
