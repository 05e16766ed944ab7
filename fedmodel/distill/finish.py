"""After the last round: distil the teacher into a student, export and describe both.

Nothing here reads a client record: server distillation uses texts the server
holds (the task's transfer split or a file its operator names), and the test
split is the server's own. Federated distillation, which does touch client
records, runs on the clients through the `train_on_clients` callback the
ServerApp passes in, and is charged to their ledgers there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from fedmodel.config import RunSettings
from fedmodel.data.transfer_texts import transfer_file_texts
from fedmodel.distill.describe import (
    add_served_latency,
    export_and_describe,
    log_comparison,
)
from fedmodel.distill.distilled_student import StudentTrainer, student_entries
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.run.layout import STUDENT_DIR, TEACHER_DIR
from fedmodel.serve.benchmark import compare_student
from fedmodel.training.embedding_cache import length_sorted_loader

LATENCY_TEXTS = 256

log = logging.getLogger(__name__)


def server_distill_texts(
    settings: RunSettings, transfer: datasets.Dataset | None
) -> list[str] | None:
    """The server's distillation texts: `distill.transfer_file` or the transfer split.

    None when the server holds neither (the `files` task without a transfer file).
    The file is read once a process for each version of it
    (`transfer_file_texts`).
    """
    texts = transfer_file_texts(settings)
    if texts is not None:
        return texts
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
            student_entries(
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
