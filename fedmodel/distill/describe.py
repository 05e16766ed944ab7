"""Export a model and describe it: test accuracy and size; then time them as served.

The test split is the server's own; nothing here reads a client record.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from fedmodel.config import LatencySettings
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.device import model_device
from fedmodel.serve.benchmark import (
    LATENCY_BATCHES,
    describe_model,
    describe_quantized,
    served_latency_ms,
)
from fedmodel.serve.export import export_classifier
from fedmodel.training.loops import evaluate, text_inputs, text_logits

log = logging.getLogger(__name__)


def describe_student(
    student: PooledBertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    *,
    student_dir: Path,
    test: datasets.Dataset,
    test_loader: DataLoader,
    max_length: int,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Export the student (float and int8 ONNX) and measure both graphs.

    Also returns the student's `picked_labels` on `test_loader`, from the
    pass that measured its accuracy.
    """
    described, picked = export_and_describe(
        "student",
        student,
        tokenizer,
        model_dir=student_dir,
        test_loader=test_loader,
        max_length=max_length,
        quantize=True,
    )
    described["max_length"] = max_length
    log.info(
        "measuring the student's int8 ONNX graph on %d test texts: accuracy and "
        "agreement with its float graph",
        len(test),
    )
    described["quantized"] = describe_quantized(
        student_dir, texts=list(test["text"]), labels=list(test["label"])
    )
    return described, picked


@torch.no_grad()
def picked_labels(
    model: PooledBertForSequenceClassification, loader: DataLoader
) -> torch.Tensor:
    """The model's most probable label for each of the loader's texts, in order."""
    model.eval()
    device = model_device(model)
    picked = [
        model(**text_inputs(batch, device)).logits.argmax(dim=-1) for batch in loader
    ]
    return torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long)


def agreement(picked: torch.Tensor, *, teacher_labels: torch.Tensor) -> float:
    """The share of texts on which the student picked the teacher's label.

    `picked` and `teacher_labels` are the student's and the teacher's
    `picked_labels` on the same texts in the same order (the teacher at its
    token limit), so that one pass of the teacher serves the agreement before
    and after distillation.
    """
    if len(picked) != len(teacher_labels):
        raise ValueError(
            f"{len(teacher_labels)} teacher labels for {len(picked)} texts"
        )
    same = int((picked == teacher_labels).sum())
    return same / len(picked) if len(picked) else float("nan")


def export_and_describe(
    name: str,
    model: PooledBertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    *,
    model_dir: Path,
    test_loader: DataLoader,
    max_length: int,
    quantize: bool = False,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Export one model and describe it, with a progress line for each step.

    Also returns the model's `picked_labels` on `test_loader`, from the pass
    that measured its accuracy: a second pass over the test split took as
    long again (a minute for the demo's teacher on 2 cores). With `quantize`,
    the int8 ONNX graph is written beside the float one.
    """
    started = time.perf_counter()
    graphs = "ONNX, float and int8" if quantize else "ONNX"
    log.info(
        "exporting the %s to %s (Hugging Face format and %s)", name, model_dir, graphs
    )
    export_classifier(
        model, tokenizer, model_dir, max_length=max_length, quantize=quantize
    )
    log.info("measuring the %s's test accuracy", name)
    result = evaluate(model, test_loader, logits_fn=text_logits(model))
    described = describe_model(model, model_dir=model_dir, result=result)
    log.info("%s exported and measured in %.0f s", name, time.perf_counter() - started)
    return described, result.predicted


def add_served_latency(
    entries: dict[str, Any],
    model_dirs: dict[str, Path],
    latency_texts: list[str],
    *,
    calls: LatencySettings,
) -> None:
    """Time the exported models in turn and add their latencies to `entries`.

    `calls` says how many timed calls make each median (`latency.calls_batchN`).
    """
    started = time.perf_counter()
    timed = [str(size) for size in LATENCY_BATCHES if size <= len(latency_texts)]
    untimed = [str(size) for size in LATENCY_BATCHES if size > len(latency_texts)]
    log.info(
        "timing the %s as served, taking turns call by call: CPU latency in "
        "PyTorch and ONNX Runtime at batch %s%s",
        " and the ".join(model_dirs),
        " and ".join(timed),
        f" (not at batch {' and '.join(untimed)}: the test split holds "
        f"{len(latency_texts)} texts)"
        if untimed
        else "",
    )
    latencies_by_name = served_latency_ms(model_dirs, latency_texts, calls=calls)
    for name, latencies in latencies_by_name.items():
        entries[name].update(latencies)
    log.info("timed in %.0f s", time.perf_counter() - started)


def log_comparison(entries: dict[str, Any]) -> None:
    """One line: the student against the teacher, as finish_models reports them."""
    teacher, student = entries["teacher"], entries["student"]
    versus = entries["student_vs_teacher"]
    log.info(
        "student: accuracy %.4f (int8 ONNX %.4f, same label as float on %.3f) vs "
        "teacher %.4f (ratio %.3f, int8 %.3f), %d vs %d layers, %s / %s "
        "faster at batch 1 / 32 as served, agreement with teacher %.3f -> %.3f",
        student["accuracy"],
        student["quantized"]["accuracy"],
        student["quantized"]["agreement_with_float"],
        teacher["accuracy"],
        versus["accuracy_ratio"] or 0.0,
        versus.get("served_accuracy_ratio", float("nan")),
        student["num_layers"],
        teacher["num_layers"],
        _speedup(versus, "served_speedup_batch1"),
        _speedup(versus, "served_speedup_batch32"),
        entries["distillation"]["agreement_before"],
        entries["distillation"]["agreement_after"],
    )


def _speedup(versus: dict[str, Any], key: str) -> str:
    """A speed-up as the comparison line shows it; "untimed" where none was timed.

    A test split of fewer texts than a batch leaves that batch untimed.
    """
    value = versus.get(key)
    return "untimed" if value is None else f"{value:.1f}x"
