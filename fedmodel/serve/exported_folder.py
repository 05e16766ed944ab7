"""Reading an exported folder's tokenizer and labels, as every runtime needs.

Kept free of torch and of our model classes, so the ONNX runtimes and
`fedmodel predict` load only what serving a graph needs. A runtime reads the
folder's config.json once (`read_exported_folder`) and passes the values on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ExportedFolder:
    """An exported model folder and what serving reads from its config.json."""

    path: Path
    label_names: tuple[str, ...]
    # As config.json writes it: compared with the tokenizer's size.
    vocab_size: Any
    max_position_embeddings: int | None
    pad_token_id: int | None


def read_exported_folder(model_dir: Path) -> ExportedFolder:
    """The folder's config.json, read once; FedmodelError names what is unusable."""
    config = _json_object_of(model_dir, CONFIG_FILE)
    positions = config.get("max_position_embeddings")
    pad_id = config.get("pad_token_id")
    return ExportedFolder(
        path=model_dir,
        label_names=_label_names(model_dir, config),
        vocab_size=config.get("vocab_size"),
        max_position_embeddings=positions if isinstance(positions, int) else None,
        pad_token_id=pad_id if isinstance(pad_id, int) else None,
    )


def load_tokenizer_of(folder: ExportedFolder) -> PreTrainedTokenizerBase:
    """The tokenizer saved in an exported folder, checked against its config.

    Raises FedmodelError when the folder has no tokenizer.json or the
    tokenizer's vocabulary is not the model's: transformers would otherwise
    build an empty one and the model would label noise.
    """
    from transformers import AutoTokenizer

    tokenizer_file_of(folder.path)
    try:
        # The folder's config names our model class through auto_map; the
        # tokenizer is a stock one, and saying so keeps transformers from
        # asking on stdin whether to run the folder's code.
        tokenizer = AutoTokenizer.from_pretrained(
            folder.path, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        raise unloadable_tokenizer(folder.path, exc) from exc
    check_vocab_size(folder, len(tokenizer))
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


def check_vocab_size(folder: ExportedFolder, tokens: int) -> None:
    """Refuse a tokenizer of `tokens` tokens when config.json's vocab differs."""
    if folder.vocab_size != tokens:
        raise FedmodelError(
            f"--model {folder.path}: {folder.path / TOKENIZER_FILE} holds "
            f"{tokens} tokens but {CONFIG_FILE} has vocab_size "
            f"{folder.vocab_size}; copy the tokenizer files of the same export "
            "or export the model again"
        )


def max_length_of(folder: ExportedFolder, tokenizer_limit: int) -> int:
    """The longest input to feed: the tokenizer's limit, never past the model's.

    A tokenizer without a limit says 1e30; the position table is the bound.
    """
    positions = folder.max_position_embeddings
    if positions is None:
        return int(tokenizer_limit)
    return int(min(tokenizer_limit, positions))


def _label_names(model_dir: Path, config: dict[str, Any]) -> tuple[str, ...]:
    """The label names in the folder's config.json, by class index."""
    try:
        id2label = config["id2label"]
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
