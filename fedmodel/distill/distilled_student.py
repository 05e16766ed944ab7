"""The student: built from the teacher, distilled, then exported and described.

It is distilled on the texts the server holds (no client record is read), then
on the clients through the `train_on_clients` callback the ServerApp passes in
(federated distillation, charged to their ledgers there). A resumed student is
the checkpoint's, which an earlier start distilled on the same server texts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from fedmodel.config import RunSettings
from fedmodel.config.wording import plural
from fedmodel.distill.augment import augment_texts
from fedmodel.distill.describe import agreement, describe_student, picked_labels
from fedmodel.distill.server import distill_on_server
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.student import build_student
from fedmodel.run.layout import STUDENT_DIR
from fedmodel.training.embedding_cache import length_sorted_loader

log = logging.getLogger(__name__)

StudentTrainer = Callable[[PooledBertForSequenceClassification], None]


def student_entries(
    settings: RunSettings,
    teacher: PooledBertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    *,
    texts: list[str] | None,
    train_on_clients: StudentTrainer | None,
    test: tuple[datasets.Dataset, torch.Tensor],
    run_dir: Path,
    student_resumed: bool,
) -> dict[str, Any]:
    """Distil, export and describe the student: `student` and `distillation`.

    `test` is the test split and the teacher's `picked_labels` on it. Empty
    when there is nothing to distil on: no server texts, no clients.
    """
    if texts is None and train_on_clients is None:
        # Said in full before round 1 (`warn_no_server_texts`); the end of
        # the run says only what came of it.
        log.warning("no student is made: the server holds no texts to distil on")
        return {}
    split, teacher_labels = test
    student_settings = _with_max_length(settings, settings.distill.student.max_length)
    student_loader = length_sorted_loader(student_settings, split)
    student, distillation = _distill_student(
        settings,
        teacher,
        tokenizer,
        texts=texts,
        train_on_clients=train_on_clients,
        test=(student_loader, teacher_labels),
        student_max_length=student_settings.task.max_length,
        student_resumed=student_resumed,
    )
    described, picked = describe_student(
        student,
        tokenizer,
        student_dir=run_dir / STUDENT_DIR,
        test=split,
        test_loader=student_loader,
        max_length=student_settings.task.max_length,
    )
    distillation["agreement_after"] = agreement(picked, teacher_labels=teacher_labels)
    return {"student": described, "distillation": distillation}


def _distill_student(
    settings: RunSettings,
    teacher: PooledBertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    *,
    texts: list[str] | None,
    train_on_clients: StudentTrainer | None,
    test: tuple[DataLoader, torch.Tensor],
    student_max_length: int,
    student_resumed: bool = False,
) -> tuple[PooledBertForSequenceClassification, dict[str, Any]]:
    """Build the student and distil it: on the server's texts, then the clients'.

    `test` is the test split as the student reads it and the teacher's
    `picked_labels` on it; the report holds their agreement before (the
    caller adds the one after, from the student's measured test pass).
    """
    student_loader, teacher_labels = test
    student = build_student(teacher, settings.distill.student)
    distillation: dict[str, Any] = {
        "mode": settings.distill.name,
        "agreement_before": agreement(
            picked_labels(student, student_loader), teacher_labels=teacher_labels
        ),
        "server_texts": 0,
        "server_seconds": 0.0,
    }
    if texts is not None:
        distillation.update(
            _distil_on_server_texts(
                settings,
                teacher,
                student,
                tokenizer=tokenizer,
                texts=texts,
                student_max_length=student_max_length,
                student_resumed=student_resumed,
            )
        )
    if train_on_clients is not None:
        train_on_clients(student)
    return student, distillation


def _distil_on_server_texts(
    settings: RunSettings,
    teacher: PooledBertForSequenceClassification,
    student: PooledBertForSequenceClassification,
    *,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    student_max_length: int,
    student_resumed: bool,
) -> dict[str, Any]:
    """Distil `student` on the server's texts: `server_texts`, `server_seconds`.

    Not a `student_resumed`: the clients' rounds replace it with the
    checkpoint's student, which an earlier start distilled on these texts.
    """
    copies = settings.distill.augment_copies
    if student_resumed:  # the seconds are this start's, as wall_seconds are
        count = len(augment_texts(texts, copies=copies, seed=settings.seed))
        log.info("the resumed student was distilled on %d server-held texts", count)
        return {"server_texts": count, "server_seconds": 0.0}
    # Named with the copies: each epoch's line counts them (`augment_texts`).
    log.info(
        "distilling into a %d-layer student (%d feed-forward units, %d tokens) "
        "on %d server-held texts%s (no client record is read: no privacy cost)",
        student.config.num_hidden_layers,
        student.config.intermediate_size,
        student_max_length,
        len(texts),
        f" and {copies} perturbed {plural(copies, 'copy', 'copies')} of each, "
        f"{len(texts) * (1 + copies)} texts an epoch"
        if copies
        else "",
    )
    done = distill_on_server(
        teacher,
        student,
        texts=texts,
        tokenizer=tokenizer,
        settings=settings.distill,
        max_length=settings.task.max_length,
        seed=settings.seed,
    )
    return {"server_texts": done.num_texts, "server_seconds": done.seconds}


def _with_max_length(settings: RunSettings, max_length: int | None) -> RunSettings:
    """The run's settings with the student's token limit (None: the task's)."""
    if max_length is None:
        return settings
    task = dataclasses.replace(settings.task, max_length=max_length)
    return dataclasses.replace(settings, task=task)
