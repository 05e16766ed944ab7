"""Serving an exported folder's Hugging Face weights with PyTorch.

Only this runtime imports torch and our model class; `inference` loads it
when a folder is served with `--runtime torch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError

from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.run.layout import ONNX_INPUTS
from fedmodel.serve.exported_folder import (
    CONFIG_FILE,
    MODEL_OPTION,
    WEIGHTS_FILE,
    ExportedFolder,
    load_tokenizer_of,
    max_length_of,
    read_exported_folder,
)


class TorchClassifier:
    """The Hugging Face folder, run with PyTorch.

    `key` is what gave the folder (`--model`), which every refusal names.
    """

    def __init__(self, model_dir: Path, *, key: str = MODEL_OPTION) -> None:
        folder = read_exported_folder(model_dir, key=key)
        self.model = _load_torch_model(folder)
        self.model.eval()
        self.tokenizer = load_tokenizer_of(folder)
        self.max_length = max_length_of(folder, self.tokenizer.model_max_length)
        self.label_names = folder.label_names
        self.label_descriptions = folder.label_descriptions

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [len(texts), num_labels]."""
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_token_type_ids=False,
            return_tensors="pt",
        )
        inputs = {name: encoded[name] for name in ONNX_INPUTS}
        with torch.inference_mode():
            return self.model(**inputs).logits.numpy()


def _load_torch_model(folder: ExportedFolder) -> PooledBertForSequenceClassification:
    """The folder's classifier; FedmodelError names a damaged or mismatched file."""
    model_dir = folder.path
    if not (model_dir / WEIGHTS_FILE).is_file():
        raise FedmodelError(
            f"{folder.named}: no {WEIGHTS_FILE} in this folder; copy the whole "
            "exported folder or export the model again"
        )
    try:
        # Mismatched tensors load as fresh ones, refused below with their shapes.
        loaded = PooledBertForSequenceClassification.from_pretrained(
            model_dir, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except SafetensorError as exc:
        raise FedmodelError(
            f"{folder.named}: {model_dir / WEIGHTS_FILE} is damaged ({exc}); "
            "export the model again or copy the file again"
        ) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise FedmodelError(
            f"{folder.named}: the folder holds no loadable fedmodel "
            f"classifier ({exc}); point at a run's model/ or student/ folder"
        ) from exc
    # With output_loading_info it is a pair, which the stubs do not say.
    model, info = cast(
        tuple[PooledBertForSequenceClassification, dict[str, Any]], loaded
    )
    _refuse_fresh_tensors(folder, info)
    return model


def _refuse_fresh_tensors(folder: ExportedFolder, info: dict[str, Any]) -> None:
    """Refuse a model whose tensors were missing or mismatched in the file.

    transformers fills both with random values and only logs it, so the
    model would label at random.
    """
    model_dir = folder.path
    if info["missing_keys"]:
        raise FedmodelError(
            f"{folder.named}: {model_dir / WEIGHTS_FILE} lacks "
            f"{', '.join(sorted(info['missing_keys']))}; they would be random, "
            "so export the model again or copy the whole exported folder again"
        )
    if info["mismatched_keys"]:
        shapes = ", ".join(
            f"{name} {list(saved)} saved, {list(built)} from {CONFIG_FILE}"
            for name, saved, built in sorted(info["mismatched_keys"])
        )
        raise FedmodelError(
            f"{folder.named}: {model_dir / CONFIG_FILE} does not match the "
            f"saved weights ({shapes}; its id2label names "
            f"{len(folder.label_names)} {plural(len(folder.label_names), 'label')}); "
            f"restore {CONFIG_FILE} "
            "from the export or export the model again"
        )
