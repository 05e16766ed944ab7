"""A client's batch order: a stream of its own per (seed, client, round)."""

from __future__ import annotations

import datasets
import torch

from fedmodel.client.jobs import feature_loader, text_loader
from fedmodel.config import RunSettings
from tests.conftest import small_settings

RECORDS = 40


def _feature_order(seed: int, *, client: int, round_number: int) -> list[int]:
    """Which records a client's feature batches hold in a round, in order."""
    settings = small_settings(f"seed={seed}")
    features = torch.arange(float(RECORDS)).unsqueeze(1)
    loader = feature_loader(
        settings,
        features,
        torch.zeros(RECORDS, dtype=torch.long),
        client_id=client,
        round_number=round_number,
    )
    return [int(row) for batch, _ in loader for row in batch[:, 0]]


def _text_order(settings: RunSettings, *, client: int, round_number: int) -> list[int]:
    """Which records a client's text batches hold in a round, by their labels."""
    split = datasets.Dataset.from_dict(
        {"text": [f"record {i}" for i in range(RECORDS)], "label": list(range(RECORDS))}
    )
    loader = text_loader(settings, split, client_id=client, round_number=round_number)
    return [int(label) for batch in loader for label in batch["labels"]]


def test_no_other_seed_client_or_round_repeats_a_rounds_batch_order() -> None:
    # Before, the loaders were seeded with seed + round: seed 42's round 2
    # shuffled as seed 43's round 1, and every client of a round alike.
    first = _feature_order(42, client=0, round_number=1)
    assert sorted(first) == list(range(RECORDS))
    assert first == _feature_order(42, client=0, round_number=1)
    assert _feature_order(42, client=0, round_number=2) != _feature_order(
        43, client=0, round_number=1
    )
    assert first != _feature_order(42, client=1, round_number=1)
    assert first != _feature_order(42, client=0, round_number=2)


def test_text_batches_follow_the_same_streams() -> None:
    settings = small_settings()
    first = _text_order(settings, client=0, round_number=1)
    assert sorted(first) == list(range(RECORDS))
    assert first == _text_order(settings, client=0, round_number=1)
    assert first != _text_order(settings, client=1, round_number=1)
    assert first != _text_order(settings, client=0, round_number=2)
