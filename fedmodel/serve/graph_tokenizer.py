"""An ONNX graph's inputs from an exported folder, with the `tokenizers` library.

transformers' AutoTokenizer imports torch, which took most of a one-text
`fedmodel predict` on a graph. This reads the folder's tokenizer.json
directly and applies what transformers' call would: cut at the folder's
limit, pad to the longest text of the call, with the sides and the pad token
its tokenizer_config.json names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from fedmodel.errors import FedmodelError
from fedmodel.model.tokenizer_file import parsed_tokenizer_file
from fedmodel.run.layout import ONNX_INPUTS
from fedmodel.serve.exported_folder import (
    TOKENIZER_CONFIG_FILE,
    ExportedFolder,
    check_vocab_size,
    max_length_of,
    tokenizer_file_of,
    tokenizer_settings_of,
)

# What transformers assumes when tokenizer_config.json sets no model_max_length.
NO_LIMIT = int(1e30)
# Each graph input, as the Encoding attribute that holds it.
ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask"}


class GraphTokenizer:
    """Texts to the graph's `ONNX_INPUTS`, as the folder's own tokenizer makes them."""

    def __init__(self, folder: ExportedFolder) -> None:
        tokenizer_file_of(folder)
        tokenizer = parsed_tokenizer_file(folder.path, named=folder.named)
        check_vocab_size(folder, tokenizer.get_vocab_size(with_added_tokens=True))
        settings = tokenizer_settings_of(folder)
        self.max_length = max_length_of(
            folder, settings.get("model_max_length", NO_LIMIT)
        )
        # Set here, whatever state an older export left in tokenizer.json
        # (e.g. padding every text to 128).
        tokenizer.enable_truncation(
            self.max_length, direction=settings.get("truncation_side", "right")
        )
        pad_token, pad_id = _pad_token_of(folder, tokenizer, settings)
        tokenizer.enable_padding(
            direction=settings.get("padding_side", "right"),
            pad_id=pad_id,
            pad_token=pad_token,
        )
        self.tokenizer = tokenizer

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph's inputs for `texts`: int64 [len(texts), longest]."""
        encodings: list[Encoding] = self.tokenizer.encode_batch(list(texts))
        return {
            name: np.array(
                [getattr(encoding, ENCODING_FIELDS[name]) for encoding in encodings],
                dtype=np.int64,
            )
            for name in ONNX_INPUTS
        }


def _pad_token_of(
    folder: ExportedFolder, tokenizer: Tokenizer, settings: dict[str, Any]
) -> tuple[str, int]:
    """The pad token and its id: tokenizer_config.json's, else config.json's id.

    Raises FedmodelError when neither names a token of the vocabulary, as
    transformers refuses to pad without one.
    """
    named = settings.get("pad_token")
    if isinstance(named, dict):  # an AddedToken, as older transformers saved it
        named = named.get("content")
    known = tokenizer.token_to_id(named) if isinstance(named, str) else None
    if isinstance(named, str) and known is not None:
        return named, known
    pad_id = folder.pad_token_id
    token = None if pad_id is None else tokenizer.id_to_token(pad_id)
    if pad_id is None or token is None:
        raise FedmodelError(
            f"{folder.named}: {folder.path / TOKENIZER_CONFIG_FILE} names no "
            f"pad_token of the vocabulary ({named!r}) and config.json no "
            "pad_token_id, so a batch cannot be padded; copy the tokenizer "
            "files of the same export or export the model again"
        )
    return token, pad_id
