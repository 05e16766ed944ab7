"""After the last round: distil the teacher into a student, export and describe both.

Nothing here reads a client record: server distillation uses texts the server
holds (the task's transfer split or a file its operator names), and the test
split is the server's own. Federated distillation, which does touch client
records, runs on the clients through the `train_on_clients` callback the
ServerApp passes in, and is charged to their ledgers there.
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
from fedmodel.data.text_inputs import read_texts
from fedmodel.distill.augment import augment_texts
from fedmodel.distill.describe import (
    add_served_latency,
    agreement,
    describe_student,
    export_and_describe,
    log_comparison,
    picked_labels,
)
from fedmodel.distill.server import distill_on_server
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.student import build_student
from fedmodel.run.layout import STUDENT_DIR, TEACHER_DIR
from fedmodel.serve.benchmark import compare_student
from fedmodel.training.embedding_cache import length_sorted_loader

LATENCY_TEXTS = 256

log = logging.getLogger(__name__)

StudentTrainer = Callable[[PooledBertForSequenceClassification], None]


def server_distill_texts(
    settings: RunSettings, transfer: datasets.Dataset | None
) -> list[str] | None:
    """The server's distillation texts: `distill.transfer_file` or the transfer split.

    None when the server holds neither (the `files` task without a transfer file).
    A table's texts are in `task.text_column`, as in the task's own files, so
    a file in the sites' format serves as it is.
    """
    if settings.distill.transfer_file is not None:
        return read_texts(
            Path(settings.distill.transfer_file),
            key="distill.transfer_file",
            text_column=settings.task.text_column,
        )
    if transfer is None or len(transfer) == 0:
        return None
    return list(transfer["text"])


def finish_models(
    settings: RunSettings,
    *,
    teacher: PooledBertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    test: datasets.Dataset,
    server_texts: list[str] | None,
    run_dir: Path,
    train_on_clients: StudentTrainer | None = None,
    student_resumed: bool = False,
) -> dict[str, Any]:
    """Export the teacher (and the distilled student) and report on both.

    `server_texts` are the texts the server distils on (`server_distill_texts`;
    None: it holds none; not for a `student_resumed`). Returns the summary entries:
    `teacher`, and with distillation on `student`, `student_vs_teacher` and
    `distillation`.
    """
    max_length = settings.task.max_length
    test_loader = length_sorted_loader(settings, test)
    described, teacher_labels = export_and_describe(
        "teacher",
        teacher,
        tokenizer,
        model_dir=run_dir / TEACHER_DIR,
        test_loader=test_loader,
        max_length=max_length,
    )
    entries: dict[str, Any] = {"teacher": described}
    if settings.distill.enabled:
        entries.update(
            _student_entries(
                settings,
                teacher,
                tokenizer,
                texts=server_texts,
                train_on_clients=train_on_clients,
                test=(test, teacher_labels),
                run_dir=run_dir,
                student_resumed=student_resumed,
            )
        )
    model_dirs = {
        name: run_dir / folder
        for name, folder in (("teacher", TEACHER_DIR), ("student", STUDENT_DIR))
        if name in entries
    }
    # Timed together at the end, so both see the same machine load.
    timed = list(test["text"])[:LATENCY_TEXTS]
    add_served_latency(entries, model_dirs, timed, calls=settings.latency)
    if "student" in entries:
        entries["student_vs_teacher"] = compare_student(
            entries["teacher"], entries["student"]
        )
        log_comparison(entries)
    else:
        _warn_of_earlier_student(run_dir)
    return entries


def _warn_of_earlier_student(run_dir: Path) -> None:
    """Say that a student left by an earlier start does not match this teacher.

    A resume with distill=off of a run that distilled: the folder is the
    user's to keep or remove, so it stays, but it was not made from this
    teacher and summary.json reports no student.
    """
    if (run_dir / STUDENT_DIR).is_dir():
        log.warning(
            "%s holds a student from an earlier start of this run; with "
            "distill=off this run made none, so it does not match the teacher "
            "in %s (summary.json reports no student); remove it or distil again",
            run_dir / STUDENT_DIR,
            run_dir / TEACHER_DIR,
        )


def _student_entries(
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
    if student_resumed:  # the seconds are this start's, as wall_seconds are
        copies = settings.distill.augment_copies
        count = len(augment_texts(texts, copies=copies, seed=settings.seed))
        log.info("the resumed student was distilled on %d server-held texts", count)
        return {"server_texts": count, "server_seconds": 0.0}
    log.info(
        "distilling into a %d-layer student (%d feed-forward units, %d tokens) "
        "on %d server-held texts (no client record is read: no privacy cost)",
        student.config.num_hidden_layers,
        student.config.intermediate_size,
        student_max_length,
        len(texts),
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
