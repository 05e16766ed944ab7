"""Perturbed copies of the server's texts, for the student to learn the teacher on.

The teacher labels every copy, so a copy needs no label: it is a nearby input
on which the student learns the teacher's function.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

WORD_DROP_RATE = 0.1
WORD_SWAP_RATE = 0.3


def augment_texts(texts: Sequence[str], *, copies: int, seed: int) -> list[str]:
    """The texts followed by `copies` perturbed copies of each.

    A copy drops each word with probability 0.1 and, with probability 0.3,
    swaps two neighbouring words: nearby inputs on which the student learns
    the teacher's function (the teacher labels them, so no label is needed).
    """
    rng = random.Random(seed)
    augmented = list(texts)
    for _ in range(copies):
        for text in texts:
            words = [w for w in text.split() if rng.random() >= WORD_DROP_RATE]
            if len(words) > 2 and rng.random() < WORD_SWAP_RATE:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
            augmented.append(" ".join(words) or text)
    return augmented
