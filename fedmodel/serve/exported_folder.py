"""Reading an exported folder's tokenizer and labels, as every runtime needs.

Kept free of torch and of our model classes, so the ONNX runtimes and
`fedmodel predict` load only what serving a graph needs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmodel.errors import FedmodelError
from fedmodel.run.layout import ONNX_INPUTS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    tensors: str,
) -> dict[str, Any]:
    """The ONNX inputs of `texts`, padded to the longest, cut at `max_length`."""
    encoded = tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
        return_tensors=tensors,
    )
    return {name: encoded[name] for name in ONNX_INPUTS}


def load_tokenizer_of(model_dir: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in an exported folder, checked against its config.

    Raises FedmodelError when the folder has no tokenizer.json or the
    tokenizer's vocabulary is not the model's: transformers would otherwise
    build an empty one and the model would label noise.
    """
    from transformers import AutoTokenizer

    if not (model_dir / TOKENIZER_FILE).is_file():
        raise FedmodelError(
            f"--model {model_dir}: no {TOKENIZER_FILE} in this folder, so its "
            "texts cannot be tokenized as in training; copy the whole exported "
            "folder or export the model again"
        )
    try:
        # The folder's config names our model class through auto_map; the
        # tokenizer is a stock one, and saying so keeps transformers from
        # asking on stdin whether to run the folder's code.
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise FedmodelError(
            f"--model {model_dir}: no tokenizer could be loaded from this folder "
            f"({exc}); a model folder written by fedmodel holds one"
        ) from exc
    vocab_size = _config_of(model_dir).get("vocab_size")
    if vocab_size != len(tokenizer):
        raise FedmodelError(
            f"--model {model_dir}: {model_dir / TOKENIZER_FILE} holds "
            f"{len(tokenizer)} tokens but {CONFIG_FILE} has vocab_size "
            f"{vocab_size}; copy the tokenizer files of the same export or "
            "export the model again"
        )
    return tokenizer


def max_length_of(model_dir: Path, tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest input to feed: the tokenizer's limit, never past the model's.

    A tokenizer without a limit says 1e30; the position table is the bound.
    """
    positions = _config_of(model_dir).get("max_position_embeddings")
    if not isinstance(positions, int):
        return int(tokenizer.model_max_length)
    return int(min(tokenizer.model_max_length, positions))


def label_names_of(model_dir: Path) -> tuple[str, ...]:
    """The label names in the folder's config.json, by class index."""
    try:
        id2label = _config_of(model_dir)["id2label"]
        return tuple(id2label[str(i)] for i in range(len(id2label)))
    except (KeyError, TypeError) as exc:
        raise FedmodelError(
            f"--model {model_dir}: {CONFIG_FILE} has no usable id2label ({exc}); "
            "re-export the model with fedmodel"
        ) from exc


def _config_of(model_dir: Path) -> dict[str, Any]:
    config_path = model_dir / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise FedmodelError(
            f"--model {model_dir}: {config_path} cannot be read ({exc}); "
            "re-export the model with fedmodel"
        ) from exc
    if not isinstance(config, dict):
        raise FedmodelError(
            f"--model {model_dir}: {config_path} is not a JSON object; "
            "re-export the model with fedmodel"
        )
    return config
