"""In federated distillation the clients train the server's student, not another.

The student rounds exchange the student's trainable weights; each client builds
the rest of its student from the teacher. Server distillation before those
rounds must therefore leave the rest as the teacher's, or each client computes
its DP gradients at a student that differs from the one the server updates.
"""

from __future__ import annotations

import torch

from fedmodel.client.jobs import distill_job
from fedmodel.config import RunSettings
from fedmodel.data.tasks import load_task
from fedmodel.distill.server import distill_on_server
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.finetune import merged_classifier
from fedmodel.model.head import trainable_state
from fedmodel.model.student import build_student, prepare_student_for_distillation
from fedmodel.training.global_model import GlobalModel
from tests.conftest import small_settings

TEXTS = 200


def _server_student(
    settings: RunSettings,
) -> tuple[GlobalModel, PooledBertForSequenceClassification]:
    """The teacher as the server holds it, and its student after server distillation."""
    task = load_task(settings.task, seed=settings.seed)
    model = GlobalModel(settings, label_names=task.label_names, test=task.test)
    teacher = merged_classifier(model.trainable)
    student = build_student(teacher, settings.distill.student)
    assert task.transfer is not None
    distill_on_server(
        teacher,
        student,
        texts=list(task.transfer["text"])[:TEXTS],
        tokenizer=model.tokenizer,
        settings=settings.distill,
        max_length=settings.task.max_length,
        seed=settings.seed,
    )
    return model, student


def test_clients_build_the_servers_student_before_the_first_student_round() -> None:
    settings = small_settings("distill=federated", "distill.rounds=1")
    model, student = _server_student(settings)
    # What distill_on_clients sends: the student's trainable weights.
    exchanged = trainable_state(prepare_student_for_distillation(student))
    task = load_task(settings.task, seed=settings.seed)
    job = distill_job(
        settings,
        split=task.train.select(range(8)),
        label_names=task.label_names,
        student_weights=exchanged,
        teacher_weights=model.weights(),
        client_id=0,
        round_number=settings.num_rounds + 1,
    )
    on_client = job.exchanged.state_dict()
    on_server = student.state_dict()
    assert set(on_client) == set(on_server)
    kept = sorted(set(on_server) - set(exchanged))
    assert "bert.embeddings.position_embeddings.weight" in kept
    differ = [n for n in kept if not torch.equal(on_client[n], on_server[n])]
    assert not differ, f"the clients' student differs from the server's in {differ}"


def test_server_distillation_alone_still_tunes_all_but_the_word_embeddings() -> None:
    # distill=server's documented figures were measured this way: unchanged.
    settings = small_settings()
    model, student = _server_student(settings)
    teacher = merged_classifier(model.trainable).state_dict()
    after = student.state_dict()
    word = "bert.embeddings.word_embeddings.weight"
    position = "bert.embeddings.position_embeddings.weight"
    assert torch.equal(after[word], teacher[word])
    assert not torch.equal(after[position], teacher[position])
