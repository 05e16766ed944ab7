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
from fedmodel.model.tokenizer_file import TOKENIZER_FILE, folder_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILE = "model.safetensors"
# What gives `fedmodel predict` its folder, as its messages name it.
MODEL_OPTION = "--model"
# config.json's entry of each class's description (task.label_descriptions),
# beside id2label: a run without the key, or an earlier export, has none.
DESCRIPTIONS_ENTRY = "label_descriptions"


@dataclass(frozen=True)
class ExportedFolder:
    """An exported model folder and what serving reads from its config.json."""

    path: Path
    label_names: tuple[str, ...]
    # Label: what it means; empty where the export kept no descriptions.
    label_descriptions: dict[str, str]
    # As config.json writes it: compared with the tokenizer's size.
    vocab_size: Any
    max_position_embeddings: int | None
    pad_token_id: int | None
    # How every message names the folder: `--model DIR`.
    named: str


def read_exported_folder(model_dir: Path, *, key: str = MODEL_OPTION) -> ExportedFolder:
    """The folder's config.json, read once; FedmodelError names what is unusable.

    `key` is what gave the folder (`--model`), said before it in messages.
    """
    named = f"{key} {model_dir}"
    config = _json_object_of(named, model_dir / CONFIG_FILE)
    positions = config.get("max_position_embeddings")
    pad_id = config.get("pad_token_id")
    return ExportedFolder(
        path=model_dir,
        label_names=_label_names(named, config),
        label_descriptions=_label_descriptions(config),
        vocab_size=config.get("vocab_size"),
        max_position_embeddings=positions if isinstance(positions, int) else None,
        pad_token_id=pad_id if isinstance(pad_id, int) else None,
        named=named,
    )


def load_tokenizer_of(folder: ExportedFolder) -> PreTrainedTokenizerBase:
    """The tokenizer saved in an exported folder, checked against its config.

    Raises FedmodelError when the folder has no tokenizer.json, one that does
    not load, or the tokenizer's vocabulary is not the model's: transformers
    would otherwise build an empty one and the model would label noise. So
    does a folder without tokenizer_config.json (`tokenizer_settings_of`).
    """
    tokenizer_file_of(folder)
    tokenizer_settings_of(folder)
    tokenizer = folder_tokenizer(
        str(folder.path),
        named=folder.named,
        fix="a model folder written by fedmodel holds one",
    )
    check_vocab_size(folder, len(tokenizer))
    return tokenizer


def tokenizer_file_of(folder: ExportedFolder) -> Path:
    """The folder's tokenizer.json; FedmodelError when it is missing."""
    path = folder.path / TOKENIZER_FILE
    if not path.is_file():
        raise FedmodelError(
            f"{folder.named}: no {TOKENIZER_FILE} in this folder, so its "
            "texts cannot be tokenized as in training; copy the whole exported "
            "folder or export the model again"
        )
    return path


def check_vocab_size(folder: ExportedFolder, tokens: int) -> None:
    """Refuse a tokenizer of `tokens` tokens when config.json's vocab differs."""
    if folder.vocab_size != tokens:
        raise FedmodelError(
            f"{folder.named}: {folder.path / TOKENIZER_FILE} holds "
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


def _label_names(named: str, config: dict[str, Any]) -> tuple[str, ...]:
    """The label names in the folder's config.json, by class index."""
    try:
        id2label = config["id2label"]
        return tuple(id2label[str(i)] for i in range(len(id2label)))
    except (KeyError, TypeError) as exc:
        raise FedmodelError(
            f"{named}: {CONFIG_FILE} has no usable id2label ({exc}); "
            "re-export the model with fedmodel"
        ) from exc


def _label_descriptions(config: dict[str, Any]) -> dict[str, str]:
    """Each label's description in config.json; none that is not label: text.

    Serving needs only the labels: a hand-edited entry shows no description
    rather than refusing the model.
    """
    entry = config.get(DESCRIPTIONS_ENTRY)
    if not isinstance(entry, dict):
        return {}
    return {
        label: text
        for label, text in entry.items()
        if isinstance(label, str) and isinstance(text, str)
    }


def tokenizer_settings_of(folder: ExportedFolder) -> dict[str, Any]:
    """The folder's tokenizer_config.json; FedmodelError when it is missing.

    It holds `model_max_length`, the length the model was trained and
    measured at (the student's own): without it both runtimes read texts up
    to the position table (512 tokens for BERT), so a long text's label and
    probabilities silently differ from the model's as exported.
    """
    path = folder.path / TOKENIZER_CONFIG_FILE
    if not path.is_file():
        raise FedmodelError(
            f"{folder.named}: no {TOKENIZER_CONFIG_FILE} in this folder, so the "
            "length its texts were cut at in training (model_max_length) is "
            "unknown; copy the whole exported folder or export the model again"
        )
    return _json_object_of(folder.named, path)


def _json_object_of(named: str, path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FedmodelError(
            f"{named}: {path} cannot be read ({exc}); re-export the model with fedmodel"
        ) from exc
    if not isinstance(loaded, dict):
        raise FedmodelError(
            f"{named}: {path} is not a JSON object; re-export the model with fedmodel"
        )
    return loaded
