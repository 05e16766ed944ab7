"""Serving an exported classifier: from its Hugging Face folder or its ONNX file.

Both loaders read the tokenizer and label names from the exported folder, so a
prediction needs nothing but what `fedmodel` wrote. Our model class (and
with it torch) is imported only for the torch runtime.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from fedmodel.errors import FedmodelError
from fedmodel.run.layout import (
    AUTO_RUNTIME,
    ONNX_FILE,
    QUANTIZED_ONNX_FILE,
    RUNTIME_FILES,
    STUDENT_DIR,
    TEACHER_DIR,
)
from fedmodel.serve.exported_folder import CONFIG_FILE
from fedmodel.serve.onnx_runtime import OnnxClassifier

# Texts per call of a runtime while `fedmodel predict` labels a file, and while
# a run measures its int8 student (summary.json): dynamic int8 quantization
# scales activations per call, so a label can depend on the batch it is in.
PREDICT_BATCH = 64
# What names the classifiers that `alternating_latency_ms` times.
Name = TypeVar("Name", bound=Hashable)


class TextClassifier(Protocol):
    """Anything that turns texts into logits over named labels."""

    label_names: tuple[str, ...]
    # What each label means (task.label_descriptions); empty without them.
    label_descriptions: dict[str, str]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [len(texts), num_labels]."""
        ...


@dataclass(frozen=True)
class Prediction:
    """One text's labels, most probable first."""

    text: str
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]


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
        from fedmodel.serve.torch_runtime import TorchClassifier

        return TorchClassifier(model_dir)
    if not (model_dir / file).is_file():
        # Only a student is exported with an int8 graph; every export has a float one.
        lacking = (
            "students are exported with it"
            if file == QUANTIZED_ONNX_FILE
            else "every export holds it: copy the whole exported folder or export "
            "the model again"
        )
        raise FedmodelError(
            f"--model {model_dir}: no {file} in this folder for --runtime "
            f"{runtime}; {lacking}, or choose another runtime"
        )
    return OnnxClassifier(model_dir / file)


def load_classifier(path: Path, *, runtime: str = AUTO_RUNTIME) -> TextClassifier:
    """A Hugging Face model folder, or an ONNX file inside one.

    `path` is one that `check_model_path` accepted: `fedmodel predict` checks
    it before it reads its input, so it is checked once. A folder is served by
    `runtime`; `auto` picks its int8 ONNX graph when it has one (the exported
    student), else PyTorch. Raises FedmodelError naming the path and what is
    missing.
    """
    if not path.is_dir():
        return OnnxClassifier(path)
    if runtime == AUTO_RUNTIME:
        runtime = "onnx_int8" if (path / QUANTIZED_ONNX_FILE).is_file() else "torch"
    return open_runtime(path, runtime)


def check_model_path(path: Path, *, runtime: str = AUTO_RUNTIME) -> None:
    """Refuse a path that is neither a model folder nor an .onnx file, unloaded.

    `fedmodel predict` asks before it reads its input: a run folder given for
    its model/ folder is named so, not by the input's columns, which it reads
    by the run's task.text_column only from a model/ or student/ folder.
    """
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise FedmodelError(f"--model {path}: {_not_a_model_folder(path)}")
        return
    if runtime != AUTO_RUNTIME:
        raise FedmodelError(
            f"--runtime {runtime} chooses among a model folder's files; point "
            f"--model at the folder, not at {path}"
        )
    if path.suffix == ".onnx" and path.is_file():
        return
    if not path.exists():
        raise FedmodelError(
            f"--model {path}: no such file or folder; point at a run's model/ or "
            f"student/ folder, or at its {ONNX_FILE}"
        )
    raise FedmodelError(
        f"--model {path}: neither a model folder nor an .onnx file; point at a "
        f"run's model/ or student/ folder, or at its {ONNX_FILE}"
    )


def _not_a_model_folder(path: Path) -> str:
    """Why a folder without config.json serves nothing, and which folder would."""
    exported = [path / name for name in (STUDENT_DIR, TEACHER_DIR)]
    exported = [folder for folder in exported if (folder / CONFIG_FILE).is_file()]
    if exported:
        either = " or ".join(str(folder) for folder in exported)
        return f"a run folder, not a model folder; point at {either}"
    return (
        f"no {CONFIG_FILE} in this folder, so it is not a saved model; point at a "
        f"run's {TEACHER_DIR}/ or {STUDENT_DIR}/ folder, or at its {ONNX_FILE}"
    )


def predict(
    classifier: TextClassifier,
    texts: Sequence[str],
    *,
    top_k: int,
) -> list[Prediction]:
    """The `top_k` most probable labels of each text, with probabilities."""
    check_top_k(top_k)
    predictions: list[Prediction] = []
    for start in range(0, len(texts), PREDICT_BATCH):
        chunk = texts[start : start + PREDICT_BATCH]
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


def check_top_k(top_k: int) -> None:
    """Refuse a `--top-k` below 1 (FedmodelError)."""
    if top_k < 1:
        raise FedmodelError(f"--top-k must be >= 1, got {top_k}; ask for 1 or more")


def alternating_latency_ms(
    classifiers: Mapping[Name, TextClassifier],
    texts: Sequence[str],
    *,
    batch_size: int,
    repeats: int,
) -> dict[Name, float]:
    """Median ms per call of each classifier, called in turn on the same batches.

    Taking turns call by call lets every classifier see the same machine load.
    Batches cycle through `texts`; each classifier gets one untimed warm-up call.
    Each round takes its turns in a new (seeded) order: a call right after
    PyTorch's ran slower (on a busy 2-core machine, an ONNX graph twice as
    long and more at batch 1), so in a fixed order the classifier after it,
    the teacher's ONNX graph, was timed slow and every speed-up over it read
    high.
    """
    if len(texts) < batch_size:
        raise ValueError(f"need at least {batch_size} texts, got {len(texts)}")
    for classifier in classifiers.values():
        classifier.logits(texts[:batch_size])
    timings: dict[Name, list[float]] = {name: [] for name in classifiers}
    order = list(classifiers)
    shuffler = random.Random(0)
    for i in range(repeats):
        start = (i * batch_size) % (len(texts) - batch_size + 1)
        batch = texts[start : start + batch_size]
        shuffler.shuffle(order)
        for name in order:
            classifier = classifiers[name]
            began = time.perf_counter()
            classifier.logits(batch)
            timings[name].append((time.perf_counter() - began) * 1000.0)
    return {name: statistics.median(values) for name, values in timings.items()}
