"""Reading an exported folder's tokenizer and labels, as every runtime needs.

Kept free of torch and of our model classes, so the ONNX runtimes and
`fedmodel predict` load only what serving a graph needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILE = "model.safetensors"


def load_tokenizer_of(model_dir: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in an exported folder, checked against its config.

    Raises FedmodelError when the folder has no tokenizer.json or the
    tokenizer's vocabulary is not the model's: transformers would otherwise
    build an empty one and the model would label noise.
    """
    from transformers import AutoTokenizer

    tokenizer_file_of(model_dir)
    try:
        # The folder's config names our model class through auto_map; the
        # tokenizer is a stock one, and saying so keeps transformers from
        # asking on stdin whether to run the folder's code.
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise unloadable_tokenizer(model_dir, exc) from exc
    check_vocab_size(model_dir, len(tokenizer))
    return tokenizer


def tokenizer_file_of(model_dir: Path) -> Path:
    """The folder's tokenizer.json; FedmodelError when it is missing."""
    path = model_dir / TOKENIZER_FILE
    if not path.is_file():
        raise FedmodelError(
            f"--model {model_dir}: no {TOKENIZER_FILE} in this folder, so its "
            "texts cannot be tokenized as in training; copy the whole exported "
            "folder or export the model again"
        )
    return path


def unloadable_tokenizer(model_dir: Path, cause: Exception) -> FedmodelError:
    """The error for a folder whose tokenizer files do not load."""
    return FedmodelError(
        f"--model {model_dir}: no tokenizer could be loaded from this folder "
        f"({cause}); a model folder written by fedmodel holds one"
    )


def check_vocab_size(model_dir: Path, tokens: int) -> None:
    """Refuse a tokenizer of `tokens` tokens when config.json's vocab differs."""
    vocab_size = _config_of(model_dir).get("vocab_size")
    if vocab_size != tokens:
        raise FedmodelError(
            f"--model {model_dir}: {model_dir / TOKENIZER_FILE} holds "
            f"{tokens} tokens but {CONFIG_FILE} has vocab_size "
            f"{vocab_size}; copy the tokenizer files of the same export or "
            "export the model again"
        )


def max_length_of(model_dir: Path, tokenizer_limit: int) -> int:
    """The longest input to feed: the tokenizer's limit, never past the model's.

    A tokenizer without a limit says 1e30; the position table is the bound.
    """
    positions = _config_of(model_dir).get("max_position_embeddings")
    if not isinstance(positions, int):
        return int(tokenizer_limit)
    return int(min(tokenizer_limit, positions))


def pad_token_id_of(model_dir: Path) -> int | None:
    """config.json's `pad_token_id`, None when it names none."""
    pad_id = _config_of(model_dir).get("pad_token_id")
    return pad_id if isinstance(pad_id, int) else None


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


def tokenizer_settings_of(model_dir: Path) -> dict[str, Any]:
    """The folder's tokenizer_config.json; empty when the folder has none."""
    if not (model_dir / TOKENIZER_CONFIG_FILE).is_file():
        return {}
    return _json_object_of(model_dir, TOKENIZER_CONFIG_FILE)


def _config_of(model_dir: Path) -> dict[str, Any]:
    return _json_object_of(model_dir, CONFIG_FILE)


def _json_object_of(model_dir: Path, name: str) -> dict[str, Any]:
    path = model_dir / name
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FedmodelError(
            f"--model {model_dir}: {path} cannot be read ({exc}); "
            "re-export the model with fedmodel"
        ) from exc
    if not isinstance(loaded, dict):
        raise FedmodelError(
            f"--model {model_dir}: {path} is not a JSON object; "
            "re-export the model with fedmodel"
        )
    return loaded
