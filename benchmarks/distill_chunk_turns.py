"""The two ways `distill_chunks.py` times a distillation step: whole and in chunks.

`time_whole_and_chunked` distils two equal students batch by batch in turn,
one on whole batches as every step ran before length chunks, one with
`distill_step`, and projects a whole distillation's steps both ways.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from distill_epoch_turns import run_inputs, server_student, teacher_and_texts

from fedmodel.config import DistillSettings
from fedmodel.data.tokenization import length_chunks
from fedmodel.distill.precision import forward_precision
from fedmodel.distill.server import CHUNK_COST, distill_loss, distill_step
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.device import model_device


def whole_step(
    student: PooledBertForSequenceClassification,
    batch: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    targets: tuple[torch.Tensor, torch.Tensor],
    settings: DistillSettings,
) -> float:
    """A step on the whole batch, padded to its longest text (before chunks)."""
    with forward_precision(settings.precision, model_device(student)):
        loss = distill_loss(student, batch, targets=targets, settings=settings)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def padded_tokens(batch: Mapping[str, torch.Tensor]) -> tuple[int, int, int]:
    """The batch's real tokens, its token slots whole, and in its length chunks."""
    real = int(batch["attention_mask"].sum())
    chunks = length_chunks(batch, chunk_cost=CHUNK_COST)
    return real, batch["input_ids"].numel(), sum(c["input_ids"].numel() for c in chunks)


def time_whole_and_chunked(
    teacher_run: Path | None, overrides: Sequence[str], *, batches: int
) -> None:
    """Time both ways batch by batch in turn, then project whole distillations."""
    settings, _, texts, teacher = teacher_and_texts(teacher_run, overrides)
    distill = settings.distill
    inputs = run_inputs(settings, teacher, texts)
    steps = {"whole": whole_step, "chunked": distill_step}
    students = {name: server_student(teacher, distill) for name in steps}
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    losses: dict[str, list[float]] = {name: [] for name in steps}
    tokens = [0, 0, 0]
    batched = zip(range(batches), inputs.loader, strict=False)
    for number, (_, batch) in enumerate(batched):
        tokens = [t + n for t, n in zip(tokens, padded_tokens(batch), strict=True)]
        for name, step in steps.items():
            student, optimizer = students[name]
            torch.manual_seed(number)  # the same dropout seed for both
            started = time.perf_counter()
            losses[name].append(
                step(
                    student, batch, optimizer, targets=inputs.targets, settings=distill
                )
            )
            seconds[name].append(time.perf_counter() - started)
    _report(seconds, losses, tokens, distill=distill, texts=len(inputs.texts))


def _report(
    seconds: dict[str, list[float]],
    losses: dict[str, list[float]],
    tokens: list[int],
    *,
    distill: DistillSettings,
    texts: int,
) -> None:
    """Print the figures `time_whole_and_chunked` measured."""
    real, whole, chunked = tokens
    step = {name: statistics.median(values) for name, values in seconds.items()}
    count = len(seconds["whole"])
    print(f"{count} batches of {distill.batch_size}, in turns")
    print(
        f"token slots: {real} real; whole batches {whole} "
        f"({1 - real / whole:.2f} padding), chunks {chunked} "
        f"({1 - real / chunked:.2f} padding)"
    )
    print(
        f"s per batch (median): whole {step['whole']:.3f}, chunked "
        f"{step['chunked']:.3f}; ratio whole / chunked "
        f"{step['whole'] / step['chunked']:.3f}"
    )
    print(
        f"mean loss over the batches: whole {statistics.mean(losses['whole']):.4f}, "
        f"chunked {statistics.mean(losses['chunked']):.4f}"
    )
    total = distill.epochs * math.ceil(texts / distill.batch_size)
    print(
        f"projected {distill.epochs}-epoch distillation steps ({total}): whole "
        f"{total * step['whole']:.0f} s, chunked {total * step['chunked']:.0f} s"
    )
