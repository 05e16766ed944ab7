"""What a client's round trains on: its records or their stored features, and labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets

    from fedmodel.data.tokenization import Encoded
    from fedmodel.training.feature_store import StoredFeatures


@dataclass(frozen=True)
class RoundRecords:
    """A client's training split (or its stored features) and the label names.

    `encoded` is the split's texts as the model reads them, in the split's
    order (`tokenize_texts` at `task.max_length`), where they were tokenized
    before the round (a site counts its cut texts from them when it reads its
    file); None, and the round's job tokenizes them.
    """

    split: datasets.Dataset | StoredFeatures
    label_names: tuple[str, ...]
    encoded: list[Encoded] | None = None
