"""Tokenizing texts once and padding each batch only to its own longest text.

Batches carry explicit, contiguous `position_ids` and `token_type_ids` of shape
[batch, seq]: BERT's default `position_ids` is a [1, L] buffer that Opacus's
per-sample gradient hooks cannot handle.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

Encoded = dict[str, list[int]]


def tokenize_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_length: int
) -> list[Encoded]:
    """Tokenize texts with truncation to `max_length` and no padding.

    Each item holds "input_ids" alone: without padding its attention mask
    would be all ones, so `PaddingCollator` makes the mask with the padding,
    per batch. Masks asked of the tokenizer, and copies of both lists, were
    work a site's round paid twice over its records (benchmarks/site_round.py
    times its tokenizing).
    """
    batch = _ids_batch(tokenizer, texts, max_length=max_length)
    return [{"input_ids": ids} for ids in batch["input_ids"]]


def tokenized_with_cuts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_length: int
) -> tuple[list[Encoded], int | None]:
    """`tokenize_texts`' items, and how many of `texts` it cut to `max_length`.

    A fast tokenizer keeps, with each text's encoding, the tokens truncation
    took off (`overflowing`), so the count costs no second pass; a Python
    tokenizer keeps none, and the count is None (`cut_texts.cut_count` counts).
    """
    batch = _ids_batch(tokenizer, texts, max_length=max_length)
    encoded: list[Encoded] = [{"input_ids": ids} for ids in batch["input_ids"]]
    if batch.encodings is None:
        return encoded, None
    return encoded, sum(bool(item.overflowing) for item in batch.encodings)


def _ids_batch(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_length: int
) -> BatchEncoding:
    from transformers import BatchEncoding

    if max_length < 2:
        raise ValueError(
            f"max_length must be >= 2 (room for [CLS] [SEP]): {max_length}"
        )
    if len(texts) == 0:  # which the tokenizer refuses
        return BatchEncoding({"input_ids": []}, encoding=[])
    return tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_token_type_ids=False,
        return_attention_mask=False,
    )


@dataclass(frozen=True)
class PaddingCollator:
    """Pad a list of encoded examples to the longest one and stack them as tensors.

    Returns "input_ids", "attention_mask", "token_type_ids" (zeros) and
    "position_ids" (0..L-1 per row), all int64 of shape [batch, L], plus
    "labels" ([batch]) when the examples carry a "labels" int. Padding is on the
    right, so position ids of real tokens are the same as without padding.
    """

    pad_token_id: int = 0

    def __call__(
        self, examples: Sequence[Mapping[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """Collate one batch."""
        size = len(examples)
        length = max((len(example["input_ids"]) for example in examples), default=0)
        input_ids = torch.full((size, length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((size, length), dtype=torch.long)
        for row, example in enumerate(examples):
            ids = example["input_ids"]
            input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = torch.as_tensor(
                example.get("attention_mask", [1] * len(ids)), dtype=torch.long
            )
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": torch.zeros((size, length), dtype=torch.long),
            "position_ids": torch.arange(length, dtype=torch.long).repeat(size, 1),
        }
        with_labels = sum("labels" in example for example in examples)
        if with_labels not in (0, size):
            raise ValueError(
                f"{with_labels} of {size} examples carry 'labels'; all or none must"
            )
        if size and with_labels:
            labels = [int(example["labels"]) for example in examples]
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch


def length_chunks(
    batch: Mapping[str, torch.Tensor], *, chunk_cost: int
) -> list[dict[str, torch.Tensor]]:
    """`batch`'s rows in chunks by length, each cut to its own longest text.

    The rows go shortest first, cut where the chunks hold the fewest padded
    tokens plus `chunk_cost` tokens for each chunk (what running one more
    costs), so a few short texts no longer pad to the batch's longest. Every
    row is in exactly one chunk.
    """
    lengths = batch["attention_mask"].sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    starts = _cheapest_starts(lengths[order].tolist(), chunk_cost)
    chunks = []
    for first, end in itertools.pairwise([*starts, len(order)]):
        rows = order[first:end]
        longest = int(lengths[rows].max())
        chunks.append(
            {
                key: value[rows, :longest] if value.dim() == 2 else value[rows]
                for key, value in batch.items()
            }
        )
    return chunks


def _cheapest_starts(lengths: list[int], chunk_cost: int) -> list[int]:
    """Where each chunk of the sorted `lengths` starts, at the least total cost.

    A chunk of rows `first..end-1` costs `chunk_cost` plus its rows times its
    longest, `lengths[end - 1]`; the cheapest cuts of every prefix in turn.
    """
    cheapest: list[float] = [0.0] + [math.inf] * len(lengths)
    start = [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        for first in range(end):
            cost = cheapest[first] + chunk_cost + (end - first) * lengths[end - 1]
            if cost < cheapest[end]:
                cheapest[end], start[end] = cost, first
    starts, end = [], len(lengths)
    while end:
        end = start[end]
        starts.append(end)
    return starts[::-1]


class EncodedTexts(Dataset[dict[str, Any]]):
    """Tokenized examples held in memory, with their labels when given."""

    def __init__(self, encoded: list[Encoded], labels: Sequence[int] | None) -> None:
        if labels is not None and len(labels) != len(encoded):
            raise ValueError(f"{len(encoded)} texts but {len(labels)} labels")
        self._encoded = encoded
        self._labels = None if labels is None else [int(label) for label in labels]

    def __len__(self) -> int:
        """Return the number of examples."""
        return len(self._encoded)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return one example: its input_ids, and its label as labels if any."""
        example: dict[str, Any] = dict(self._encoded[index])
        if self._labels is not None:
            example["labels"] = self._labels[index]
        return example


def length_order(texts: Sequence[str]) -> list[int]:
    """Indices of `texts`, shortest first (ties in input order).

    Batches of texts of similar length need little dynamic padding; whoever
    runs texts in this order and keys rows by text uses this one order.
    """
    return sorted(range(len(texts)), key=lambda i: len(texts[i]))


def make_text_loader(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    labels: Sequence[int] | None,
    *,
    max_length: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    encoded: list[Encoded] | None = None,
) -> DataLoader[dict[str, Any]]:
    """Build a DataLoader over texts, tokenized once and padded per batch.

    `labels` may be None for unlabelled texts (e.g. distillation transfer data).
    Shuffling uses a generator seeded with `seed`, so the order is reproducible.
    `encoded` is `texts` as `tokenize_texts` gave them at `max_length`, where
    they were tokenized before; None, and they are tokenized here.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if encoded is None:
        encoded = tokenize_texts(tokenizer, texts, max_length=max_length)
    dataset = EncodedTexts(encoded, labels)
    pad_token_id = tokenizer.pad_token_id
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=PaddingCollator(
            pad_token_id=0 if pad_token_id is None else int(pad_token_id)
        ),
    )
