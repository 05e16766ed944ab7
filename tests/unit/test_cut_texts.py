"""How many texts `task.max_length` cuts: counted as the run tokenizes them."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from fedmodel.data.cut_texts import cut_count, reads_by_words
from fedmodel.data.tokenization import tokenize_texts, tokenized_with_cuts
from fedmodel.model.load import load_tokenizer
from tests.conftest import small_settings


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    """The tiny model's tokenizer: MiniLM's, as the runs of the tests use."""
    return load_tokenizer(small_settings().model)


def _texts() -> list[str]:
    """Texts of known token counts at max_length 8 ([CLS] and [SEP] included)."""
    return [
        "note " * 6,  # 8 tokens: kept whole
        "note " * 7,  # 9 tokens: cut
        "note",  # 3 tokens
        "note " * 500,  # long: cut, found from its first words
        # One word past WordPiece's 100 characters is one [UNK]: 3 tokens,
        # however many characters.
        "x" * 300,
        # No space in the characters read first: read whole, and cut.
        "x" * 300 + " note" * 6,
        # Words past the first characters read cut it: read further.
        "supercalifragilistic" * 4 + " note" * 70,
        "note" + " " * 80 + " note" * 20,
        "",  # [CLS] [SEP]
    ]


def test_the_count_is_of_texts_past_max_length_tokens_specials_included(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    texts = _texts()
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    assert lengths[:3] == [8, 9, 3] and lengths[4:6] == [3, 9] and lengths[8] == 2
    assert lengths[3] == 502
    assert cut_count(tokenizer, texts, max_length=8) == 5
    assert cut_count(tokenizer, texts, max_length=9) == 3
    assert cut_count(tokenizer, texts, max_length=501) == 1
    assert cut_count(tokenizer, [], max_length=8) == 0


@pytest.mark.parametrize("max_length", [2, 5, 16, 64, 128])
def test_reading_the_first_words_counts_as_reading_whole_texts(
    tokenizer: PreTrainedTokenizerBase, max_length: int
) -> None:
    # Every length of text from one word to past the first characters read.
    words = "the patient's café-visit ended; 42 ECG leads x" * 60
    texts = [words[:end] for end in range(0, len(words), 37)] + _texts()
    whole = tokenize_texts(tokenizer, texts, max_length=10_000)
    expected = sum(len(item["input_ids"]) > max_length for item in whole)
    assert reads_by_words(tokenizer)
    assert cut_count(tokenizer, texts, max_length=max_length) == expected


@pytest.mark.parametrize("max_length", [2, 8, 9, 64, 501])
def test_the_models_tokens_count_the_cut_texts_as_cut_count_does(
    tokenizer: PreTrainedTokenizerBase, max_length: int
) -> None:
    # A site counts its cut texts from the tokens its round trains with: the
    # same tokens as tokenize_texts gives, and the same count as cut_count's.
    words = "the patient's café-visit ended; 42 ECG leads x" * 60
    texts = [words[:end] for end in range(0, len(words), 37)] + _texts()
    encoded, cut = tokenized_with_cuts(tokenizer, texts, max_length=max_length)
    assert encoded == tokenize_texts(tokenizer, texts, max_length=max_length)
    assert cut == cut_count(tokenizer, texts, max_length=max_length)
    assert cut >= 1  # "note " * 500 at least
    assert tokenized_with_cuts(tokenizer, [], max_length=max_length) == ([], 0)


def test_another_tokenizers_texts_are_read_whole() -> None:
    # A word-level tokenizer that splits at spaces only, not BERT's: its
    # texts are tokenized whole, so nothing is assumed of how it splits.
    vocab = {"[UNK]": 0, "a": 1, "b": 2}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    assert not reads_by_words(tokenizer)
    texts = ["a b a", "a " * 40, "b"]
    assert cut_count(tokenizer, texts, max_length=3) == 1
    assert cut_count(tokenizer, texts, max_length=2) == 2
