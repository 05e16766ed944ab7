"""How many texts `task.max_length` cuts, counted as the run tokenizes them.

A text is cut when the model's tokenizer gives it more than `max_length`
tokens, [CLS] and [SEP] included (`tokenize_texts`, which the run trains
with, keeps the first `max_length`). A WordPiece tokenizer that splits words
at spaces (every BERT's) gives a text's first words the same tokens alone as
in the whole text, so a long text is read only as far as its tokens pass
`max_length`: 11,200 notes of 300 words took 9.7 s of CPU to tokenize
whole, 4.8 s so, at 128 tokens. `cuts_line` says the counts, in
`fedmodel privacy-plan`, in `fedmodel simulate`'s log before round 1 and in
a deployed site's own log; a site counts its texts from the tokens its
round then trains or embeds with (`tokenization.tokenized_with_cuts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenizers import models, normalizers, pre_tokenizers

from fedmodel.config.wording import plural, two_digits_up
from fedmodel.data.tokenization import tokenize_texts

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class SplitCut:
    """How many of one split's texts are longer than `task.max_length` tokens.

    `split` names it as the line does: "training" (the clients' records, or
    a site's file), "test", and the server's own labelled records,
    "validation" (`task.validation_file`) or "transfer" (the shipped tasks').
    """

    split: str
    cut: int
    texts: int


# Characters of a text read first, for each of its tokens `max_length` allows;
# a text not cut by then is read four times as far, then whole.
CHARS_PER_TOKEN = 8
GROWTH = 4


def cut_count(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_length: int
) -> int:
    """How many of `texts` have more than `max_length` tokens, so the run cuts.

    Tokenized by `tokenize_texts` at `max_length + 1`, so a cut text shows
    one token past the limit. Where the tokenizer splits words at spaces
    (`reads_by_words`), each text is read up to a space first and whole only
    if those words leave it within the limit: its count is the same.
    """
    pending = list(texts)
    chars = CHARS_PER_TOKEN * (max_length + 1) if reads_by_words(tokenizer) else 0
    cut = 0
    while pending:
        heads = [_head(text, chars) for text in pending]
        encoded = tokenize_texts(tokenizer, heads, max_length=max_length + 1)
        left = []
        for text, head, tokens in zip(pending, heads, encoded, strict=True):
            if len(tokens["input_ids"]) > max_length:
                cut += 1
            elif len(head) < len(text):  # its first words fit: read further
                left.append(text)
        pending, chars = left, chars * GROWTH
    return cut


def reads_by_words(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether `tokenizer` tokenizes each word of a text apart from the others.

    BERT's fast tokenizer: its normalizer changes each character alone, its
    pre-tokenizer splits at spaces (and punctuation), and WordPiece splits
    each word alone; so a text's words up to a space give the first tokens of
    the whole text. Any other tokenizer's texts are read whole.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return (
        isinstance(backend.normalizer, normalizers.BertNormalizer | None)
        and isinstance(backend.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
        and isinstance(backend.model, models.WordPiece)
    )


def _head(text: str, chars: int) -> str:
    """`text` up to its last space within `chars` characters; whole if none.

    Only a plain space: BERT's normalizer drops some characters Python calls
    whitespace (a file separator), which would join the words beside them.
    """
    if not chars or len(text) <= chars:
        return text
    space = text.rfind(" ", 0, chars + 1)
    return text[:space] if space > 0 else text


def cuts_line(max_length: int, cuts: list[SplitCut]) -> str:
    """The plan's line: how many texts of each split lose their end, and the fix.

    `task.max_length 128 cuts 312 of 11,298 training texts (2.8%), 0 of 500
    test texts and ...`; each share rounded up to two digits.
    """
    counted = [
        f"{cut.cut:,} of {cut.texts:,} {cut.split} {plural(cut.texts, 'text')}"
        + (f" ({two_digits_up(100 * cut.cut / cut.texts)}%)" if cut.cut else "")
        for cut in cuts
    ]
    listed = ", ".join(counted[:-1]) + " and " if len(counted) > 1 else ""
    line = f"task.max_length {max_length} cuts {listed}{counted[-1]}"
    if not any(cut.cut for cut in cuts):
        return line
    return (
        f"{line}: a cut text keeps its first {max_length} tokens ([CLS] and "
        "[SEP] among them) and loses the rest; to keep more, raise "
        "task.max_length or shorten those texts"
    )
