"""The two precisions `distill_bf16.py` times: float32 and bfloat16 autocast.

`time_both_ways` distils two equal students step by step in turn, then has
the teacher label spread batches both ways.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from distill_epoch_turns import run_inputs, server_student, teacher_and_texts
from transformers import PreTrainedTokenizerBase

from fedmodel.config import DistillSettings
from fedmodel.distill.inputs import (
    TARGET_BATCH,
    DistillInputs,
    targets_loader,
)
from fedmodel.distill.precision import forward_precision
from fedmodel.distill.server import distill_step
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.load import load_tokenizer
from fedmodel.training.loops import text_inputs

Batch = Mapping[str, torch.Tensor]
Student = tuple[PooledBertForSequenceClassification, torch.optim.Optimizer]


PRECISIONS = ("fp32", "bf16")
CPU = torch.device("cpu")


def two_students(
    teacher: PooledBertForSequenceClassification, settings: DistillSettings
) -> dict[str, Student]:
    """Two equal students, each with the optimizer a run gives it."""
    return {name: server_student(teacher, settings) for name in PRECISIONS}


def in_turns(names: Sequence[str], turn: int) -> list[str]:
    """`names` in order on even turns, reversed on odd ones."""
    return list(names) if turn % 2 == 0 else list(reversed(names))


@torch.no_grad()
def labelled(
    teacher: PooledBertForSequenceClassification, batch: Batch, *, precision: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits and pooled vectors for one batch, as float32."""
    with forward_precision(precision, CPU):
        pooled = teacher.embed(**text_inputs(batch))
        logits = teacher.classify(pooled)
    return logits.float(), pooled.float()


def compare_labelling(
    teacher: PooledBertForSequenceClassification,
    batches: list[Batch],
) -> None:
    """Label `batches` both ways in turn; print times and how far outputs move."""
    seconds = dict.fromkeys(PRECISIONS, 0.0)
    outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {
        name: [] for name in seconds
    }
    for turn, batch in enumerate(batches):
        for name in in_turns(list(seconds), turn):
            started = time.perf_counter()
            outputs[name].append(labelled(teacher, batch, precision=name))
            seconds[name] += time.perf_counter() - started
    logits = {name: torch.cat([o[0] for o in out]) for name, out in outputs.items()}
    vectors = {name: torch.cat([o[1] for o in out]) for name, out in outputs.items()}
    same = (logits["fp32"].argmax(-1) == logits["bf16"].argmax(-1)).sum().item()
    cosine = torch.nn.functional.cosine_similarity(vectors["fp32"], vectors["bf16"])
    print(
        f"teacher labelling, {len(batches)} batches of {TARGET_BATCH} spread over "
        f"the length order, in turns: fp32 {seconds['fp32']:.1f} s, bf16 "
        f"{seconds['bf16']:.1f} s, ratio fp32 / bf16 "
        f"{seconds['fp32'] / seconds['bf16']:.3f}"
    )
    print(
        f"bf16 labels equal to fp32's on {same} of {len(logits['fp32'])} texts; "
        f"max |logit difference| {(logits['fp32'] - logits['bf16']).abs().max():.4f}; "
        f"pooled vectors' cosine: mean {cosine.mean():.5f}, min {cosine.min():.5f}"
    )


def spread_batches(
    texts: Sequence[str],
    *,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    count: int,
) -> list[Batch]:
    """`count` of `teacher_targets`'s batches, evenly spread over its length order."""
    _, loader = targets_loader(
        texts, tokenizer=tokenizer, max_length=max_length, seed=0
    )
    batches = list(loader)
    stride = max(len(batches) // count, 1)
    return batches[::stride][:count]


def compare_steps(
    students: dict[str, Student],
    inputs: DistillInputs,
    settings: DistillSettings,
    batches: int,
) -> None:
    """Step both students in turn on `batches` batches; print times and losses."""
    seconds: dict[str, list[float]] = {name: [] for name in students}
    losses: dict[str, list[float]] = {name: [] for name in students}
    for turn, batch in zip(range(batches), inputs.loader, strict=False):
        for name in in_turns(list(students), turn):
            student, optimizer = students[name]
            torch.manual_seed(turn)  # the same dropout masks
            started = time.perf_counter()
            losses[name].append(
                distill_step(
                    student,
                    batch,
                    optimizer,
                    targets=inputs.targets,
                    settings=dataclasses.replace(settings, precision=name),
                )
            )
            seconds[name].append(time.perf_counter() - started)
    step = {name: statistics.median(values) for name, values in seconds.items()}
    float32 = all(
        p.dtype == torch.float32 for s, _ in students.values() for p in s.parameters()
    )
    print(f"{len(seconds['fp32'])} steps of {settings.batch_size} texts, in turns")
    print(
        f"s per step (median): fp32 {step['fp32']:.3f}, bf16 {step['bf16']:.3f}; "
        f"ratio fp32 / bf16 {step['fp32'] / step['bf16']:.3f}"
    )
    print(
        f"mean loss over the steps: fp32 {statistics.mean(losses['fp32']):.4f}, "
        f"bf16 {statistics.mean(losses['bf16']):.4f}; first step "
        f"{losses['fp32'][0]:.4f} / {losses['bf16'][0]:.4f}; "
        f"weights still float32: {float32}"
    )


def time_both_ways(
    teacher_run: Path | None, *, batches: int, label_batches: int
) -> None:
    """Time both ways step by step in turn, then the teacher's labelling."""
    settings, _, texts, teacher = teacher_and_texts(teacher_run)
    distill = settings.distill
    tokenizer = load_tokenizer(settings.model)
    inputs = run_inputs(settings, teacher, texts)
    compare_steps(two_students(teacher, distill), inputs, distill, batches)
    compare_labelling(
        teacher,
        spread_batches(
            inputs.texts,
            tokenizer=tokenizer,
            max_length=settings.task.max_length,
            count=label_batches,
        ),
    )
