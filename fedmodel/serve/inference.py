"""Serving an exported classifier: from its Hugging Face folder or its ONNX file.

Both loaders read the tokenizer and label names from the exported folder, so a
prediction needs nothing but what `fedmodel` wrote.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.run.layout import (
    AUTO_RUNTIME,
    ONNX_FILE,
    QUANTIZED_ONNX_FILE,
    RUNTIME_FILES,
)
from fedmodel.serve.export import ONNX_INPUTS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class TextClassifier(Protocol):
    """Anything that turns texts into logits over named labels."""

    label_names: tuple[str, ...]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [len(texts), num_labels]."""
        ...


@dataclass(frozen=True)
class Prediction:
    """One text's labels, most probable first."""

    text: str
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]


class TorchClassifier:
    """The Hugging Face folder, run with PyTorch."""

    def __init__(self, model_dir: Path) -> None:
        self.model = _load_torch_model(model_dir)
        self.model.eval()
        self.tokenizer = load_tokenizer_of(model_dir)
        self.label_names = _label_names(model_dir)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [len(texts), num_labels]."""
        inputs = _tokenize(self.tokenizer, texts, tensors="pt")
        with torch.inference_mode():
            return self.model(**inputs).logits.numpy()


def _load_torch_model(model_dir: Path) -> PooledBertForSequenceClassification:
    """The folder's classifier; FedmodelError names a damaged or mismatched file."""
    try:
        # Mismatched tensors load as fresh ones, refused below with their shapes.
        loaded = PooledBertForSequenceClassification.from_pretrained(
            model_dir, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except SafetensorError as exc:
        raise FedmodelError(
            f"--model {model_dir}: {model_dir / WEIGHTS_FILE} is damaged ({exc}); "
            "export the model again or copy the file again"
        ) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise FedmodelError(
            f"--model {model_dir}: the folder holds no loadable fedmodel "
            f"classifier ({exc}); point at a run's model/ or student/ folder"
        ) from exc
    # With output_loading_info it is a pair, which the stubs do not say.
    model, info = cast(tuple[PooledBertForSequenceClassification, dict], loaded)
    if info["mismatched_keys"]:
        shapes = ", ".join(
            f"{name} {list(saved)} saved, {list(built)} from {CONFIG_FILE}"
            for name, saved, built in sorted(info["mismatched_keys"])
        )
        raise FedmodelError(
            f"--model {model_dir}: {model_dir / CONFIG_FILE} does not match the "
            f"saved weights ({shapes}; its id2label names "
            f"{len(_label_names(model_dir))} label(s)); restore {CONFIG_FILE} "
            "from the export or export the model again"
        )
    return model


class OnnxClassifier:
    """The ONNX file, run with ONNX Runtime; tokenizer and labels from its folder."""

    def __init__(self, onnx_path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # No spin-waiting after a call: spinning threads take the CPU from
        # whatever runs next on the machine (the tokenizer, another model,
        # another request). Timed alone, a model is as fast either way.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise FedmodelError(
                f"--model {onnx_path}: not a loadable ONNX model ({exc}); "
                "point at a model.onnx written by fedmodel"
            ) from exc
        self.tokenizer = load_tokenizer_of(onnx_path.parent)
        self.label_names = _label_names(onnx_path.parent)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [len(texts), num_labels]."""
        inputs = _tokenize(self.tokenizer, texts, tensors="np")
        feed = {name: np.asarray(inputs[name], dtype=np.int64) for name in ONNX_INPUTS}
        (logits,) = self.session.run(["logits"], feed)
        return np.asarray(logits)


def open_runtime(model_dir: Path, runtime: str) -> TextClassifier:
    """An exported folder served by one runtime of `RUNTIME_FILES`.

    Raises FedmodelError when the folder lacks that runtime's file.
    """
    if runtime not in RUNTIME_FILES:
        raise FedmodelError(
            f"--runtime {runtime!r}: choose one of {[AUTO_RUNTIME, *RUNTIME_FILES]}"
        )
    file = RUNTIME_FILES[runtime]
    if file is None:
        return TorchClassifier(model_dir)
    if not (model_dir / file).is_file():
        raise FedmodelError(
            f"--model {model_dir}: no {file} in this folder for --runtime "
            f"{runtime}; students are exported with it, or choose another runtime"
        )
    return OnnxClassifier(model_dir / file)


def load_classifier(path: Path, *, runtime: str = AUTO_RUNTIME) -> TextClassifier:
    """A Hugging Face model folder, or an ONNX file inside one.

    A folder is served by `runtime`; `auto` picks its int8 ONNX graph when it
    has one (the exported student), else PyTorch. Raises FedmodelError naming
    the path and what is missing.
    """
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise FedmodelError(
                f"--model {path}: no {CONFIG_FILE} in this folder, so it is not a "
                "saved model; point at a run's model/ or student/ folder, or at "
                f"its {ONNX_FILE}"
            )
        if runtime == AUTO_RUNTIME:
            runtime = "onnx_int8" if (path / QUANTIZED_ONNX_FILE).is_file() else "torch"
        return open_runtime(path, runtime)
    if runtime != AUTO_RUNTIME:
        raise FedmodelError(
            f"--runtime {runtime} chooses among a model folder's files; point "
            f"--model at the folder, not at {path}"
        )
    if path.suffix == ".onnx" and path.is_file():
        return OnnxClassifier(path)
    if not path.exists():
        raise FedmodelError(
            f"--model {path}: no such file or folder; point at a run's model/ or "
            f"student/ folder, or at its {ONNX_FILE}"
        )
    raise FedmodelError(
        f"--model {path}: neither a model folder nor an .onnx file; point at a "
        f"run's model/ or student/ folder, or at its {ONNX_FILE}"
    )


def predict(
    classifier: TextClassifier,
    texts: Sequence[str],
    *,
    top_k: int = 3,
    batch_size: int = 32,
) -> list[Prediction]:
    """The `top_k` most probable labels of each text, with probabilities."""
    if top_k < 1:
        raise FedmodelError(f"--top-k must be >= 1, got {top_k}")
    predictions: list[Prediction] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        logits = classifier.logits(chunk)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        for text, row in zip(chunk, probabilities, strict=True):
            best = np.argsort(-row)[:top_k]
            predictions.append(
                Prediction(
                    text=text,
                    labels=tuple(classifier.label_names[i] for i in best),
                    probabilities=tuple(float(row[i]) for i in best),
                )
            )
    return predictions


def median_latency_ms(
    classifier: TextClassifier,
    texts: Sequence[str],
    *,
    batch_size: int,
    repeats: int,
) -> float:
    """Median wall time of one call on `batch_size` texts, tokenizing included.

    Batches cycle through `texts`; one untimed warm-up call comes first.
    """
    timings = alternating_latency_ms(
        {"model": classifier}, texts, batch_size=batch_size, repeats=repeats
    )
    return timings["model"]


def alternating_latency_ms(
    classifiers: Mapping[str, TextClassifier],
    texts: Sequence[str],
    *,
    batch_size: int,
    repeats: int,
) -> dict[str, float]:
    """Median ms per call of each classifier, called in turn on the same batches.

    Taking turns call by call lets every classifier see the same machine load.
    Batches cycle through `texts`; each classifier gets one untimed warm-up call.
    """
    if len(texts) < batch_size:
        raise ValueError(f"need at least {batch_size} texts, got {len(texts)}")
    for classifier in classifiers.values():
        classifier.logits(texts[:batch_size])
    timings: dict[str, list[float]] = {name: [] for name in classifiers}
    for i in range(repeats):
        start = (i * batch_size) % (len(texts) - batch_size + 1)
        batch = texts[start : start + batch_size]
        for name, classifier in classifiers.items():
            began = time.perf_counter()
            classifier.logits(batch)
            timings[name].append((time.perf_counter() - began) * 1000.0)
    return {name: statistics.median(values) for name, values in timings.items()}


def _tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, tensors: str
) -> dict[str, Any]:
    encoded = tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        return_token_type_ids=False,
        return_tensors=tensors,
    )
    return {name: encoded[name] for name in ONNX_INPUTS}


def load_tokenizer_of(model_dir: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in an exported folder (FedmodelError if none loads)."""
    try:
        # The folder's config names our model class through auto_map; the
        # tokenizer is a stock one, and saying so keeps transformers from
        # asking on stdin whether to run the folder's code.
        return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise FedmodelError(
            f"--model {model_dir}: no tokenizer could be loaded from this folder "
            f"({exc}); a model folder written by fedmodel holds one"
        ) from exc


def _label_names(model_dir: Path) -> tuple[str, ...]:
    config_path = model_dir / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text())
        id2label = config["id2label"]
        return tuple(id2label[str(i)] for i in range(len(id2label)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FedmodelError(
            f"--model {model_dir}: {CONFIG_FILE} has no usable id2label ({exc}); "
            "re-export the model with fedmodel"
        ) from exc
