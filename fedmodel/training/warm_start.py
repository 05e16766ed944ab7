"""The public starting point: label names, then records the server holds.

Before round 1 the head is set from the encoder's embeddings of the label
names (`model/label_init.py`: no record read), then, where the task has a
transfer split, fitted on it. With `keep_best` the fit leaves out the records
kept to choose the model, and the fitted head is kept unless the start it
would replace (label-name or untrained) has the lower loss on them; without
`keep_best` it is fitted on every record and kept unchecked. The server's
transfer split belongs to no client, so neither step costs any client
privacy: they only change the public starting point that every client's
DP-SGD then refines.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import datasets
import torch
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import RunSettings
from fedmodel.config.wording import plural
from fedmodel.data.label_descriptions import described_labels
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.finetune import classification_head
from fedmodel.model.label_init import init_head_from_label_names, wordless_label
from fedmodel.training.embedding_cache import embed_split
from fedmodel.training.loops import feature_logits, train_epochs
from fedmodel.training.model_selection import SELECTION_SHARE, LastRoundOrStart

log = logging.getLogger(__name__)

# Fewest held-out records on which a warm start is compared with the start:
# on one to three records a loss difference is noise (docs/strict-budgets.md).
MIN_CHECK_RECORDS = 4
# Said where the task has no transfer split: what the server's start lacks.
NO_SERVER_RECORDS = (
    "the server holds no labelled records (a files task without "
    "task.validation_file): no warm start and no check against the "
    "start, the last round is kept. At strict budgets a small labelled "
    "file the server may hold, set as task.validation_file, helps most; see "
    "docs/strict-budgets.md"
)


def public_start(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    label_names: tuple[str, ...],
    transfer: datasets.Dataset | None,
    held_out: LastRoundOrStart | datasets.Dataset | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> bool:
    """Set the head from public information only, before any client trains.

    Label-name initialisation (when `label_init` is on and every label's name,
    or its description in `task.label_descriptions`, has a letter in it) for
    every task, then the warm start on the server's transfer split where there
    is one holding two labels or more. `held_out` (the server's records kept to
    choose the model, None without `keep_best`) decides whether the warm start
    is kept: see `checked_warm_start`. In head mode the server passes its
    model's selector over them, which has embedded them already; records given
    as a dataset are embedded here, into a selector that scores the head.
    `descriptions`: the labels' descriptions as the task read them (`TaskData`).
    Returns whether the head is warm-started.
    """
    named = settings.label_init and _label_start(
        classifier,
        settings=settings,
        label_names=label_names,
        descriptions=descriptions,
    )
    if transfer is None:
        log.info("%s", NO_SERVER_RECORDS)
    elif settings.warm_start.enabled and len(set(transfer["label"])) < 2:
        # A head fitted to one label answers it for every text: worse than
        # the label-name start, and the model choice would then favour it.
        log.warning(
            "no warm start: the %d server-held records it would be fitted on "
            "hold a single label, %r; the head keeps its public start. Give "
            "task.validation_file more records of each label",
            len(transfer),
            label_names[transfer["label"][0]] if len(transfer) else None,
        )
    elif settings.warm_start.enabled:
        if isinstance(held_out, datasets.Dataset):
            held_out = LastRoundOrStart(
                settings,
                classifier=classifier,
                trainable=classifier,
                validation=held_out,
                on_features=True,
            )
        return checked_warm_start(
            classifier,
            settings=settings,
            transfer=transfer,
            held_out=held_out,
            start="the label-name start" if named else "the untrained start",
        )
    return False


def _label_start(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    label_names: tuple[str, ...],
    descriptions: Mapping[str, str] | None,
) -> bool:
    """The zero-shot head from the label names or descriptions, if all have letters.

    Returns whether the head was set.
    """
    described = settings.task.label_descriptions is not None
    if described and descriptions is None:
        raise ValueError(
            f"task.label_descriptions is {settings.task.label_descriptions!r}, "
            "but no descriptions were given: pass the task's (TaskData)"
        )
    texts = described_labels(settings.task, label_names, descriptions)
    wordless = wordless_label(texts)
    if wordless is not None:
        log.warning(
            "label %s %r has no letter in it, so the head is not initialised "
            "from the labels (numbers tell the encoder nothing, and a start "
            "built from them trains worse than an untrained head). To have the "
            "zero-shot start, %s",
            "description" if described else "name",
            wordless,
            "describe each label in words"
            if described
            else "write each class's name in the label column, or describe "
            "each label in a file set as task.label_descriptions",
        )
        return False
    init_head_from_label_names(classifier, settings=settings.model, label_names=texts)
    log.info(
        "head initialised from the %d label %s",
        len(texts),
        f"descriptions in {settings.task.label_descriptions}" if described else "names",
    )
    return True


def checked_warm_start(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    transfer: datasets.Dataset,
    held_out: LastRoundOrStart | None,
    start: str,
) -> bool:
    """Warm-start the head, keeping the result only if it beats the start.

    Both heads are scored by `held_out`, a selector that scores the head on
    the embeddings of records the warm start never saw, by mean cross-entropy
    as the model choice scores rounds; the warm start is kept unless the
    start's loss is lower (a tie keeps the warm start). With fewer than
    `MIN_CHECK_RECORDS` held out the two cannot be told apart, and the warm
    start, fitted on a dozen records or fewer, is not taken unchecked: the
    head keeps its start. Without `held_out` (`keep_best` off) the warm start
    is fitted on every record and kept unchecked. Returns whether it was kept.
    """
    if held_out is not None and not held_out.on_features:
        raise ValueError("the warm-start check scores the head on embeddings")
    if held_out is not None and held_out.num_examples < MIN_CHECK_RECORDS:
        _say_too_few_to_check(start, fit=len(transfer), held_out=held_out.num_examples)
        return False
    if held_out is None:
        loss = warm_start_head(classifier, settings=settings, transfer=transfer)
        log.info(
            "warm start kept: head fitted on the server's %d records (loss %.3f); "
            "not checked against %s, as keep_best is off",
            len(transfer),
            loss,
            start,
        )
        return True
    head = classification_head(classifier)
    start_state = {name: w.detach().clone() for name, w in head.state_dict().items()}
    before = held_out.score().loss
    warm_start_head(classifier, settings=settings, transfer=transfer)
    after = held_out.score().loss
    kept = after <= before
    if not kept:
        head.load_state_dict(start_state)
    log.log(
        logging.INFO if kept else logging.WARNING,
        "%s: on the %d server-held records kept out of it, the warm start "
        "(fitted on %d) has loss %.4f, %s %.4f",
        "warm start kept" if kept else f"warm start not kept, the head keeps {start}",
        held_out.num_examples,
        len(transfer),
        after,
        start,
        before,
    )
    return kept


def _say_too_few_to_check(start: str, *, fit: int, held_out: int) -> None:
    log.warning(
        "no warm start: the head keeps %s. Of the server's %d labelled "
        "records only %d %s held out to check a warm start against it, "
        "fewer than %d, too few to tell the two apart; a task.validation_file "
        "of %d records or more is checked",
        start,
        fit + held_out,
        held_out,
        plural(held_out, "is", "are"),
        MIN_CHECK_RECORDS,
        math.floor((MIN_CHECK_RECORDS - 1) / SELECTION_SHARE) + 1,
    )


def warm_start_head(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    transfer: datasets.Dataset,
) -> float:
    """Fit the head on the transfer split's pooled features; return the loss.

    Uses the initial (public) encoder, so it applies to every fine-tuning mode:
    LoRA adapters start as the identity and full fine-tuning starts from the
    same encoder.
    """
    features, labels = embed_split(settings, model=classifier, split=transfer)
    return fit_head(classifier, settings=settings, features=features, labels=labels)


def fit_head(
    classifier: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    features: torch.Tensor,
    labels: torch.Tensor,
) -> float:
    """Fit the head on pooled features as the warm start does; return the loss."""
    warm = settings.warm_start
    head = classification_head(classifier)
    loader = DataLoader(
        TensorDataset(features, labels),
        batch_size=warm.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    optimizer = torch.optim.SGD(head.parameters(), lr=warm.learning_rate, momentum=0.9)
    return train_epochs(
        head, loader, optimizer, logits_fn=feature_logits(head), epochs=warm.epochs
    )
