"""Never end below the public start, by a validation split the server holds.

DP-SGD rounds are noisy: at a strict budget the rounds can leave the global
model worse than the public starting point. The server scores the start and
each round's aggregate on its own validation split (the task's transfer
split, or `task.validation_file` for a files task) and keeps the last round's
model unless the start fits the split better: a lower mean cross-entropy.
Two choices here were measured on records outside the split
(docs/strict-budgets.md, benchmarks/round_selection.py). Not the best of all
rounds: with a split of a few hundred records the highest of eleven noisy
scores is partly luck, and it lost to the last round. And the loss, not the
accuracy, decides against the start: on 200 records accuracy moves by about
3 points by chance, and comparing it fell back to the start in about one
epsilon-1 run in eight where the last round was better; the loss, a smoother
measure of the same fit, did not. Scoring records the server holds is
post-processing of the clients' DP updates: it costs no client any privacy.
The test split is never read here, so it chooses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import datasets
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import RunSettings
from fedmodel.config.wording import plural
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.finetune import classification_head, finetune_mode
from fedmodel.training.embedding_cache import embed_split, length_sorted_loader
from fedmodel.training.loops import EvalResult, evaluate, feature_logits, text_logits

log = logging.getLogger(__name__)

# Share of the server's own labelled split held out for choosing the model.
# The rest fits the warm start: scoring a model on the records its head was
# fitted to would always favour the start over every federated round.
SELECTION_SHARE = 0.2
SELECTION_SEED = 0


def split_for_selection(
    server_split: datasets.Dataset,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(records to fit the warm start on, records to choose the model by).

    Disjoint, and the same in every run on the same split (a fixed seed).
    """
    parts = server_split.train_test_split(
        test_size=SELECTION_SHARE, seed=SELECTION_SEED, shuffle=True
    )
    return parts["train"], parts["test"]


@dataclass(frozen=True)
class Scored:
    """A model scored on the split: its round (0: the start), score and weights."""

    round: int
    result: EvalResult
    weights: dict[str, torch.Tensor]


class LastRoundOrStart:
    """Keeps the latest round's model unless the start has a lower loss.

    Both are scored on the server's validation split. The first `offer` is
    the start; every later one replaces the latest round, so no earlier
    round is ever kept. `kept` is the latest round's model unless the start
    has a lower loss on the split (ties keep the latest). `on_features`
    (default: whether the fine-tuning mode trains the head alone) scores the
    head on the split's embeddings, made once, rather than the trainable
    model on its texts.
    """

    def __init__(
        self,
        settings: RunSettings,
        *,
        classifier: PooledBertForSequenceClassification,
        trainable: nn.Module,
        validation: datasets.Dataset,
        on_features: bool | None = None,
    ) -> None:
        if len(validation) == 0:
            raise ValueError("the server's validation split is empty")
        self.on_features = (
            finetune_mode(settings.finetune).on_features
            if on_features is None
            else on_features
        )
        self._classifier = classifier
        self._trainable = trainable
        self.num_examples = len(validation)
        if self.on_features:
            # The encoder never changes in head mode: embed the split once.
            features, labels = embed_split(settings, model=classifier, split=validation)
            self._loader = DataLoader(TensorDataset(features, labels), batch_size=1024)
        else:
            self._loader = length_sorted_loader(settings, validation)
        self.start: Scored | None = None
        self.latest: Scored | None = None

    @property
    def kept(self) -> Scored | None:
        """The model to keep: the latest round's, unless the start's loss is lower."""
        start, latest = self.start, self.latest
        if start is None or latest is None:
            return start
        return start if start.result.loss < latest.result.loss else latest

    @property
    def kept_round(self) -> int | None:
        """The round of the model to keep (0: the start)."""
        kept = self.kept
        return None if kept is None else kept.round

    def score(self) -> EvalResult:
        """Accuracy, macro-F1 and loss of the current model on the split."""
        if self.on_features:
            head = classification_head(self._classifier)
            return evaluate(head, self._loader, logits_fn=feature_logits(head))
        return evaluate(
            self._trainable, self._loader, logits_fn=text_logits(self._trainable)
        )

    def offer(self, round_number: int, weights: dict[str, torch.Tensor]) -> bool:
        """Score the model now loaded (whose weights are `weights`).

        The first offer is the start, later ones the latest round. Returns
        whether this model is the one to keep now.
        """
        offered = Scored(
            round=round_number,
            result=self.score(),
            weights={name: w.detach().clone() for name, w in weights.items()},
        )
        if self.start is None:
            self.start = offered
        else:
            self.latest = offered
        chosen = self.kept is offered
        log.info(
            "server validation (%d %s) after round %d: accuracy %.4f, loss %.4f%s",
            self.num_examples,
            plural(self.num_examples, "record"),
            round_number,
            offered.result.accuracy,
            offered.result.loss,
            "" if chosen else " (above the start's loss: the start is kept for now)",
        )
        return chosen
