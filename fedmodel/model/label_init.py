"""Initialise the classification head from the encoder's embeddings of label names.

Label names are public (every party knows them before training), and so is the
encoder, so this starting point uses no record and costs no privacy. Row k of
the head's weight becomes the unit-length pooled embedding of label name k,
scaled so that the logits of a unit-length text feature span a useful range:
the head then starts as a nearest-label-name (zero-shot) classifier that
DP-SGD refines instead of learning from noise.
"""

from __future__ import annotations

import torch
from torch import nn

from fedmodel.config import ModelSettings
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.device import batch_to, model_device
from fedmodel.model.load import load_tokenizer

# Logit scale of the zero-shot head: cosine similarities lie in [-1, 1], so a
# scale of 10 turns a 0.1 cosine lead into a 2.7x odds lead without saturating
# the softmax (a saturated start gives DP-SGD tiny, noise-drowned gradients).
LABEL_INIT_SCALE = 10.0


def wordless_label(label_names: tuple[str, ...]) -> str | None:
    """The first label name without a letter in it (such as "3"), or None.

    The zero-shot start compares a text with every label's name, so it needs
    names that mean something to the encoder. Numbers, as many label columns
    hold, do not: a head built from them starts no better than chance and
    further from the answer than an untrained one.
    """
    return next(
        (name for name in label_names if not any(c.isalpha() for c in name)), None
    )


def label_text(name: str) -> str:
    """The text embedded for a label name: identifiers read as words."""
    return " ".join(name.replace("_", " ").replace("-", " ").split())


@torch.no_grad()
def label_name_embeddings(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: ModelSettings,
    label_names: tuple[str, ...],
) -> torch.Tensor:
    """Unit-length pooled encoder vectors of the label names, one row per label."""
    if not label_names:
        raise ValueError("label_names must not be empty")
    tokenizer = load_tokenizer(settings)
    encoded = tokenizer(
        [label_text(name) for name in label_names],
        padding=True,
        truncation=True,
        max_length=64,
        return_tensors="pt",
    )
    was_training = classifier.training
    classifier.eval()
    # The tokenizer's tensors are on the CPU; the encoder may be on a GPU.
    encoded = batch_to(encoded, model_device(classifier))
    vectors = classifier.embed(
        encoded["input_ids"],
        encoded["attention_mask"],
        encoded.get("token_type_ids"),
    )
    classifier.train(was_training)
    return nn.functional.normalize(vectors, dim=-1)


@torch.no_grad()
def init_head_from_label_names(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: ModelSettings,
    label_names: tuple[str, ...],
) -> None:
    """Set the head to `LABEL_INIT_SCALE` x the label-name embeddings, with zero bias.

    Only the label names and the (public) encoder are read.
    """
    if len(label_names) != classifier.classifier.out_features:
        raise ValueError(
            f"{len(label_names)} label names for a head with "
            f"{classifier.classifier.out_features} outputs"
        )
    vectors = label_name_embeddings(
        classifier, settings=settings, label_names=label_names
    )
    classifier.classifier.weight.copy_(LABEL_INIT_SCALE * vectors)
    classifier.classifier.bias.zero_()
