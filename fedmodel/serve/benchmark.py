"""What a user deploying a model wants to know: quality, size and CPU latency."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.serve.export import ONNX_FILE
from fedmodel.serve.inference import (
    OnnxClassifier,
    TextClassifier,
    TorchClassifier,
    median_latency_ms,
)
from fedmodel.training.loops import evaluate, text_logits

WEIGHTS_FILE = "model.safetensors"
LATENCY_BATCHES = (1, 32)
LATENCY_REPEATS = {1: 50, 32: 15}

log = logging.getLogger(__name__)


def describe_model(
    model: PooledBertForSequenceClassification,
    *,
    model_dir: Path,
    test_loader: DataLoader,
    latency_texts: Sequence[str],
) -> dict[str, Any]:
    """Accuracy and macro-F1 on the test split, parameters, bytes on disk, latency.

    Latency is the median wall time of one call, tokenizing included, through
    the exported folder (PyTorch) and its ONNX file (ONNX Runtime), at batch 1
    and batch 32 on this machine's CPU.
    """
    result = evaluate(model, test_loader, logits_fn=text_logits(model))
    report: dict[str, Any] = {
        "accuracy": result.accuracy,
        "macro_f1": result.macro_f1,
        "num_layers": model.config.num_hidden_layers,
        "parameters": sum(p.numel() for p in model.parameters()),
        "size_bytes": (model_dir / WEIGHTS_FILE).stat().st_size,
        "onnx_size_bytes": (model_dir / ONNX_FILE).stat().st_size,
        "dir": str(model_dir),
    }
    runtimes: dict[str, TextClassifier] = {
        "torch": TorchClassifier(model_dir),
        "onnx": OnnxClassifier(model_dir / ONNX_FILE),
    }
    for runtime, classifier in runtimes.items():
        for batch_size in LATENCY_BATCHES:
            if len(latency_texts) < batch_size:
                continue
            report[f"{runtime}_latency_ms_batch{batch_size}"] = median_latency_ms(
                classifier,
                latency_texts,
                batch_size=batch_size,
                repeats=LATENCY_REPEATS[batch_size],
            )
    return report


def compare_student(teacher: dict[str, Any], student: dict[str, Any]) -> dict[str, Any]:
    """Student vs teacher: accuracy ratio, size ratio and speed-up per batch size."""
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
    return comparison
