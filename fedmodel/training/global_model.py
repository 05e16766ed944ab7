"""The server's global model and its evaluation on the server-held test split.

Evaluating on records the server holds is post-processing of the clients'
DP updates: it costs no client any privacy.
"""

from __future__ import annotations

import datasets
import torch
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import RunSettings
from fedmodel.model.device import on_device
from fedmodel.model.finetune import finetune_mode
from fedmodel.model.head import load_trainable_state, trainable_state
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.training.embedding_cache import embed_split, length_sorted_loader
from fedmodel.training.loops import EvalResult, evaluate, feature_logits, text_logits
from fedmodel.training.model_selection import LastRoundOrStart


class GlobalModel:
    """The shared model as the server holds it, with its test loader.

    `selector` scores it on `validation`, the server's records kept to choose
    the model (None without them). It is built with the model so that, in
    head mode, the warm-start check and the model choice share its one
    embedding of those records; in other modes it scores the model on their
    texts, and the warm-start check embeds them itself.
    """

    def __init__(
        self,
        settings: RunSettings,
        *,
        label_names: tuple[str, ...],
        test: datasets.Dataset,
        validation: datasets.Dataset | None = None,
    ) -> None:
        self.settings = settings
        self.label_names = label_names
        # On its device before LoRA wraps it (PEFT adds adapters in place).
        self.classifier = on_device(
            build_classifier(
                settings.model, label_names=label_names, seed=settings.seed
            ),
            settings.device,
        )
        self.mode = finetune_mode(settings.finetune)
        self.trainable = self.mode.prepare(self.classifier, settings.finetune)
        self.tokenizer = load_tokenizer(settings.model)
        self._test_loader = self._build_test_loader(test)
        self.selector = (
            LastRoundOrStart(
                settings,
                classifier=self.classifier,
                trainable=self.trainable,
                validation=validation,
            )
            if validation is not None and len(validation) > 0
            else None
        )

    def _build_test_loader(self, test: datasets.Dataset) -> DataLoader:
        if self.mode.on_features:
            # The encoder never changes: embed the test set once.
            features, feature_labels = embed_split(
                self.settings, model=self.classifier, split=test
            )
            return DataLoader(TensorDataset(features, feature_labels), batch_size=1024)
        return length_sorted_loader(self.settings, test)

    def weights(self) -> dict[str, torch.Tensor]:
        """The exchanged (trainable) weights."""
        return trainable_state(self.trainable)

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        """Adopt new global weights."""
        load_trainable_state(self.trainable, weights)

    def evaluate(self) -> EvalResult:
        """Accuracy, macro-F1 and loss on the server's test split."""
        module = self.mode.trained_module(self.classifier, self.trainable)
        logits_of = feature_logits if self.mode.on_features else text_logits
        return evaluate(module, self._test_loader, logits_fn=logits_of(module))
