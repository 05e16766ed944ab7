"""Text loaders read a split's records in one query, into the same batches.

A client's partition is a selection of the task's split, and its columns are
lazy in datasets 4: `list(split["text"])` read a record a query, 0.096 s of a
0.27 s LoRA round's set-up for a default bank client of 2,415 records.
"""

from __future__ import annotations

from typing import Any

import datasets
import pytest
from torch.utils.data import DataLoader

from fedmodel.client.jobs import text_loader
from fedmodel.client.round_streams import batch_order_seed
from fedmodel.data.tokenization import length_order, make_text_loader
from fedmodel.model.load import load_tokenizer
from fedmodel.training.embedding_cache import INFERENCE_BATCH, length_sorted_loader
from tests.conftest import small_settings

# More than one inference batch (128).
RECORDS = 150


def _partition() -> datasets.Dataset:
    """Records selected from a larger split, as a client's partition is."""
    every = datasets.Dataset.from_dict(
        {
            "text": [f"record {i} " + "word " * (i % 7) for i in range(2 * RECORDS)],
            "label": [i % 5 for i in range(2 * RECORDS)],
        }
    )
    return every.select(range(1, 2 * RECORDS, 2))


def _queries(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every table a split formats from here on: one per query."""
    queries: list[object] = []
    real = datasets.arrow_dataset.format_table

    def counted(table: Any, key: Any, **kwargs: Any) -> Any:
        queries.append(key)
        return real(table, key, **kwargs)

    monkeypatch.setattr(datasets.arrow_dataset, "format_table", counted)
    return queries


def _batches(loader: DataLoader) -> list[dict[str, list[list[int]]]]:
    return [{k: v.tolist() for k, v in batch.items()} for batch in loader]


def _record_by_record(split: datasets.Dataset) -> tuple[list[str], list[int]]:
    """The texts and labels as the loaders read them before: a query a record."""
    return [split[i]["text"] for i in range(len(split))], [
        split[i]["label"] for i in range(len(split))
    ]


def test_a_clients_text_loader_reads_its_records_in_one_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = small_settings("finetune=lora")
    split = _partition()
    texts, labels = _record_by_record(split)
    before = make_text_loader(
        load_tokenizer(settings.model),
        texts,
        labels,
        max_length=settings.task.max_length,
        batch_size=settings.finetune.batch_size,
        shuffle=True,
        seed=batch_order_seed(settings.seed, client_id=1, round_number=2),
    )
    queries = _queries(monkeypatch)
    loader = text_loader(settings, split, client_id=1, round_number=2)
    assert len(queries) == 1
    assert _batches(loader) == _batches(before)


def test_the_inference_loader_reads_a_split_in_one_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = small_settings()
    split = _partition()
    texts, labels = _record_by_record(split)
    order = length_order(texts)
    before = make_text_loader(
        load_tokenizer(settings.model),
        [texts[i] for i in order],
        [labels[i] for i in order],
        max_length=settings.task.max_length,
        batch_size=INFERENCE_BATCH,
        shuffle=False,
        seed=settings.seed,
    )
    queries = _queries(monkeypatch)
    loader = length_sorted_loader(settings, split)
    assert len(queries) == 1
    assert _batches(loader) == _batches(before)
