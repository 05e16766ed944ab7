"""The two ways `distill_epoch.py` times: AdamW's per-tensor loop and foreach.

`time_both_ways` distils two equal students batch by batch in turn and
projects whole distillations; `teacher_and_texts` and `server_student` build
what server distillation builds, for `distill_bf16_turns.py` too.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from distill_models import with_packaged_distill
from quiet_warnings import silence_known_warnings

from fedmodel.config import (
    DistillSettings,
    RunSettings,
    compose_config,
    settings_from_dict,
)
from fedmodel.data.tasks import TaskData, load_task
from fedmodel.distill.describe import picked_labels
from fedmodel.distill.finish import server_distill_texts
from fedmodel.distill.inputs import DistillInputs, distill_inputs
from fedmodel.distill.server import distill_step, fixed_on_server, server_optimizer
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.model.student import build_student
from fedmodel.run.layout import TEACHER_DIR
from fedmodel.training.embedding_cache import length_sorted_loader

silence_known_warnings()

Student = tuple[PooledBertForSequenceClassification, torch.optim.Optimizer]


def settings_of(teacher_run: Path | None, overrides: Sequence[str] = ()) -> RunSettings:
    """The teacher run's settings with today's distill keys, else the defaults'."""
    if teacher_run is not None:
        return settings_from_dict(with_packaged_distill(teacher_run))
    return settings_from_dict({**compose_config(list(overrides)), "run_dir": ""})


def teacher_of(
    settings: RunSettings, teacher_run: Path | None, label_names: tuple[str, ...]
) -> PooledBertForSequenceClassification:
    """The run's exported teacher, or the packaged model with a fresh head."""
    if teacher_run is not None:
        return PooledBertForSequenceClassification.from_pretrained(
            teacher_run / TEACHER_DIR
        ).eval()
    return build_classifier(settings.model, label_names=label_names, seed=0).eval()


def teacher_and_texts(
    teacher_run: Path | None, overrides: Sequence[str] = ()
) -> tuple[RunSettings, TaskData, list[str], PooledBertForSequenceClassification]:
    """A run's settings and task, server distillation's texts and the teacher.

    Without a run, the defaults with `overrides` and the packaged model.
    """
    settings = settings_of(teacher_run, overrides)
    task = load_task(settings.task, seed=settings.seed)
    texts = server_distill_texts(settings, task.transfer)
    assert texts is not None, "the task has no transfer split"
    teacher = teacher_of(settings, teacher_run, task.label_names)
    return settings, task, texts, teacher


def run_inputs(
    settings: RunSettings,
    teacher: PooledBertForSequenceClassification,
    texts: list[str],
) -> DistillInputs:
    """Server distillation's texts, targets and loader, as a run with `settings`."""
    return distill_inputs(
        teacher,
        texts,
        tokenizer=load_tokenizer(settings.model),
        settings=settings.distill,
        max_length=settings.task.max_length,
        seed=settings.seed,
    )


def server_student(
    teacher: PooledBertForSequenceClassification, distill: DistillSettings
) -> Student:
    """A student as server distillation builds it, with its optimizer."""
    student = build_student(teacher, distill.student)
    for param in fixed_on_server(student, distill):
        param.requires_grad_(False)
    return student.train(), server_optimizer(student, distill)


def before_and_after(
    teacher: PooledBertForSequenceClassification, settings: RunSettings
) -> dict[str, Student]:
    """Two equal students: the per-tensor AdamW loop and `server_optimizer`."""
    students = {
        name: server_student(teacher, settings.distill) for name in ("before", "after")
    }
    student, _ = students["before"]
    trained = [p for p in student.parameters() if p.requires_grad]
    lr = settings.distill.learning_rate
    students["before"] = (student, torch.optim.AdamW(trained, lr=lr, foreach=False))
    return students


def timed(run: object) -> float:
    """Seconds one call of `run` takes."""
    assert callable(run)
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def time_both_ways(teacher_run: Path | None, *, batches: int) -> None:
    """Time both ways batch by batch in turn, then project whole distillations."""
    settings, task, texts, teacher = teacher_and_texts(teacher_run)
    distill = settings.distill
    started = time.perf_counter()
    inputs = run_inputs(settings, teacher, texts)
    setup_s = time.perf_counter() - started
    students = before_and_after(teacher, settings)
    seconds: dict[str, list[float]] = {name: [] for name in students}
    for _, batch in zip(range(batches), inputs.loader, strict=False):
        for name, (student, optimizer) in students.items():
            torch.manual_seed(len(seconds[name]))  # the same dropout masks
            seconds[name].append(
                timed(
                    lambda s=student, o=optimizer, b=batch: distill_step(
                        s, b, o, targets=inputs.targets, settings=distill
                    )
                )
            )
    pairs = zip(*(s.parameters() for s, _ in students.values()), strict=True)
    equal = all(torch.equal(mine, theirs) for mine, theirs in pairs)
    test_loader = length_sorted_loader(settings, task.test)
    teacher_pass = timed(lambda: picked_labels(teacher, test_loader))
    student_pass = timed(lambda: picked_labels(students["after"][0], test_loader))
    step = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{len(seconds['after'])} batches of {distill.batch_size}, in turns")
    print(
        f"s per batch (median): before {step['before']:.3f}, after {step['after']:.3f}"
    )
    print(f"step ratio before / after: {step['before'] / step['after']:.3f}")
    print(f"weights bit for bit equal after the batches: {equal}")
    # Fixed parts both share: the set-up (the teacher's targets) and the
    # student's two passes over the test split (agreement before and after).
    steps = distill.epochs * math.ceil(len(inputs.texts) / distill.batch_size)
    shared = setup_s + 2 * student_pass
    before = shared + 2 * teacher_pass + steps * step["before"]
    after = shared + teacher_pass + steps * step["after"]
    print(
        f"set-up (teacher targets, loader) {setup_s:.1f} s; one pass over the "
        f"test split ({len(task.test)} texts): teacher {teacher_pass:.1f} s, student "
        f"{student_pass:.1f} s"
    )
    print(
        f"projected {distill.epochs}-epoch distillation ({steps} steps): before "
        f"{before:.0f} s, after {after:.0f} s, ratio {before / after:.3f}"
    )
