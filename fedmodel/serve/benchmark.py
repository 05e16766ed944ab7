"""What a user deploying a model wants to know: quality, size and CPU latency."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from fedmodel.config import LatencySettings
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.run.layout import ONNX_FILE, QUANTIZED_ONNX_FILE, RUNTIME_FILES
from fedmodel.serve.exported_folder import WEIGHTS_FILE
from fedmodel.serve.inference import (
    PREDICT_BATCH,
    TextClassifier,
    alternating_latency_ms,
    open_runtime,
)
from fedmodel.training.loops import EvalResult

# Each has its config key `latency.calls_batchN`: how many calls time it.
LATENCY_BATCHES = (1, 32)

log = logging.getLogger(__name__)


def exported_runtimes(model_dir: Path) -> list[str]:
    """The runtimes the folder can be served with (int8 only when exported)."""
    return [
        runtime
        for runtime, file in RUNTIME_FILES.items()
        if file is None or (model_dir / file).is_file()
    ]


def predicted_labels(classifier: TextClassifier, texts: Sequence[str]) -> np.ndarray:
    """The most probable label index of each text, in the batches predict uses."""
    picked = [
        classifier.logits(texts[start : start + PREDICT_BATCH]).argmax(axis=1)
        for start in range(0, len(texts), PREDICT_BATCH)
    ]
    return np.concatenate(picked)


def describe_model(
    model: PooledBertForSequenceClassification,
    *,
    model_dir: Path,
    result: EvalResult,
) -> dict[str, Any]:
    """Accuracy and macro-F1 on the test split (`result`), parameters, bytes on disk."""
    return {
        "accuracy": result.accuracy,
        "macro_f1": result.macro_f1,
        "num_layers": model.config.num_hidden_layers,
        "intermediate_size": model.config.intermediate_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "size_bytes": (model_dir / WEIGHTS_FILE).stat().st_size,
        "onnx_size_bytes": (model_dir / ONNX_FILE).stat().st_size,
        "dir": str(model_dir),
    }


def served_latency_ms(
    model_dirs: Mapping[str, Path],
    latency_texts: Sequence[str],
    *,
    calls: LatencySettings,
) -> dict[str, dict[str, float]]:
    """Each folder's `{runtime}_latency_ms_batch{n}`, by the folder's name.

    The median wall time of one call (of `calls.calls_batch{n}` timed calls),
    tokenizing included, through every runtime the folder was exported for,
    at batch 1 and 32 on this machine's CPU. All folders and runtimes take
    turns call by call on the same batches, so the teacher and the student
    see the same machine load.
    """
    classifiers = {
        (name, runtime): open_runtime(model_dir, runtime)
        for name, model_dir in model_dirs.items()
        for runtime in exported_runtimes(model_dir)
    }
    latencies: dict[str, dict[str, float]] = {name: {} for name in model_dirs}
    for batch_size in LATENCY_BATCHES:
        if len(latency_texts) < batch_size:
            continue
        timed = alternating_latency_ms(
            classifiers,
            latency_texts,
            batch_size=batch_size,
            repeats=calls.calls_at(batch_size),
        )
        for (name, runtime), ms in timed.items():
            latencies[name][f"{runtime}_latency_ms_batch{batch_size}"] = ms
    return latencies


def describe_quantized(
    model_dir: Path, *, texts: Sequence[str], labels: Sequence[int]
) -> dict[str, Any]:
    """The int8 ONNX file against the float one on the test texts.

    Accuracy, macro-F1, bytes on disk, and `agreement_with_float`: the fraction
    of texts on which both graphs pick the same label (the parity check).
    """
    quantized = predicted_labels(open_runtime(model_dir, "onnx_int8"), texts)
    floating = predicted_labels(open_runtime(model_dir, "onnx"), texts)
    truth = np.asarray(labels)
    return {
        "accuracy": float((quantized == truth).mean()),
        "macro_f1": float(f1_score(truth, quantized, average="macro")),
        "onnx_size_bytes": (model_dir / QUANTIZED_ONNX_FILE).stat().st_size,
        "agreement_with_float": float((quantized == floating).mean()),
    }


def compare_student(teacher: dict[str, Any], student: dict[str, Any]) -> dict[str, Any]:
    """Student vs teacher: accuracy ratios, size ratio and speed-up per batch size.

    `served_speedup_batchN` compares the teacher in its fastest runtime with the
    student as `fedmodel predict` serves it (its int8 graph when exported, whose
    accuracy ratio is `served_accuracy_ratio`).
    """
    comparison: dict[str, Any] = {
        "accuracy_ratio": student["accuracy"] / teacher["accuracy"]
        if teacher["accuracy"]
        else None,
        "parameter_ratio": student["parameters"] / teacher["parameters"],
    }
    for key in teacher:
        if "_latency_ms_" in key and key in student and student[key] > 0:
            runtime, _, batch = key.partition("_latency_ms_")
            comparison[f"{runtime}_speedup_{batch}"] = teacher[key] / student[key]
    quantized = student.get("quantized")
    if quantized is not None and teacher["accuracy"]:
        comparison["served_accuracy_ratio"] = (
            quantized["accuracy"] / teacher["accuracy"]
        )
    for batch_size in LATENCY_BATCHES:
        suffix = f"_latency_ms_batch{batch_size}"
        teacher_ms = [teacher[key] for key in teacher if key.endswith(suffix)]
        student_ms = student.get(f"onnx_int8{suffix}", student.get(f"onnx{suffix}"))
        if teacher_ms and student_ms:
            comparison[f"served_speedup_batch{batch_size}"] = (
                min(teacher_ms) / student_ms
            )
    return comparison
