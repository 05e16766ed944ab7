"""Distilling the federated teacher into a smaller student.

The server path trains the student on texts the server holds itself (a split
no client holds), so it reads no client record and costs no privacy. The
federated path (`federated_distill_loss`) is a per-record loss that clients
minimise under DP-SGD on their own records. Nothing here imports Flower.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from fedmodel.config import DistillSettings
from fedmodel.data.tokenization import length_chunks
from fedmodel.distill.inputs import distill_inputs
from fedmodel.distill.precision import forward_precision
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.device import model_device
from fedmodel.model.finetune import held_fixed
from fedmodel.model.student import exchanged_in_student_rounds
from fedmodel.training.loops import Batch, text_inputs

log = logging.getLogger(__name__)

# What one more chunk of a distillation batch costs on a CPU, in padded
# tokens' time (`distill_step`): about 0.018 s of a step against 0.00016 s a
# token, for MiniLM's two-layer student on 2 cores (docs/distillation.md).
CHUNK_COST = 115


@dataclass(frozen=True)
class DistillReport:
    """What server distillation did."""

    num_texts: int
    seconds: float


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float
) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened outputs, times T squared.

    Averaged over the batch, so each record's term depends on that record
    alone (what per-example clipping in DP-SGD needs). The T^2 factor keeps
    gradient sizes comparable across temperatures.
    """
    log_student = nn.functional.log_softmax(student_logits / temperature, dim=-1)
    log_teacher = nn.functional.log_softmax(teacher_logits / temperature, dim=-1)
    kl = nn.functional.kl_div(
        log_student, log_teacher, reduction="batchmean", log_target=True
    )
    return kl * temperature**2


def pooled_match_loss(
    student_vectors: torch.Tensor, teacher_vectors: torch.Tensor
) -> torch.Tensor:
    """One minus the mean cosine similarity of pooled text vectors."""
    cosine = nn.functional.cosine_similarity(student_vectors, teacher_vectors, dim=-1)
    return (1.0 - cosine).mean()


def distill_on_server(
    teacher: PooledBertForSequenceClassification,
    student: PooledBertForSequenceClassification,
    *,
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    settings: DistillSettings,
    max_length: int,
    seed: int,
) -> DistillReport:
    """Train the student to reproduce the teacher on the server's own texts.

    The teacher's outputs are computed once (it does not change). What stays
    the teacher's is `fixed_on_server`.
    """
    started = time.perf_counter()
    inputs = distill_inputs(
        teacher,
        texts,
        tokenizer=tokenizer,
        settings=settings,
        max_length=max_length,
        seed=seed,
    )
    optimizer = server_optimizer(student, settings)
    student.train()
    # Dropout draws from torch's global generator, which nothing seeded: the
    # same run and seed gave another student each time. Forked, so the seed
    # does not carry over to what the process does next.
    with torch.random.fork_rng(), held_fixed(fixed_on_server(student, settings)):
        torch.manual_seed(seed)
        _distill_epochs(
            student,
            inputs.loader,
            optimizer,
            targets=inputs.targets,
            settings=settings,
            started=started,
        )
    student.eval()
    return DistillReport(
        num_texts=len(inputs.texts),
        seconds=time.perf_counter() - started,
    )


def _distill_epochs(
    student: PooledBertForSequenceClassification,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    targets: tuple[torch.Tensor, torch.Tensor],
    settings: DistillSettings,
    started: float,
) -> None:
    """`settings.epochs` passes over the loader, each one's mean loss logged."""
    for epoch in range(1, settings.epochs + 1):
        mean_loss = _distill_epoch(
            student, loader, optimizer, targets=targets, settings=settings
        )
        log.info(
            "distillation epoch %d/%d: loss %.4f on %d texts (%.0f s)",
            epoch,
            settings.epochs,
            mean_loss,
            len(targets[0]),  # one teacher row per text
            time.perf_counter() - started,
        )


def fixed_on_server(
    student: PooledBertForSequenceClassification, settings: DistillSettings
) -> list[nn.Parameter]:
    """The student's parameters server distillation leaves as the teacher's.

    Always the word embeddings: the largest matrix, which a few thousand texts
    would only pull away from the teacher's. Before federated student rounds,
    everything those rounds do not exchange (all the embeddings): each client
    builds that part from the teacher, so the server's must stay the teacher's
    too, or the clients would train another student than the server's.
    """
    if settings.client_rounds:
        return [
            param
            for name, param in student.named_parameters()
            if not exchanged_in_student_rounds(name)
        ]
    return [student.bert.embeddings.word_embeddings.weight]


def server_optimizer(
    student: PooledBertForSequenceClassification,
    settings: DistillSettings,
) -> torch.optim.AdamW:
    """AdamW over the student's parameters that server distillation trains.

    All but `fixed_on_server`'s (which the caller also holds while training).

    In its multi-tensor (foreach) form: on a CPU PyTorch would pick the
    per-tensor loop, which computes the same update bit for bit with more
    Python work per step (benchmarks/distill_epoch.py times both).
    """
    fixed = fixed_on_server(student, settings)
    params = [p for p in student.parameters() if all(p is not f for f in fixed)]
    return torch.optim.AdamW(params, lr=settings.learning_rate, foreach=True)


def _distill_epoch(
    student: PooledBertForSequenceClassification,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    targets: tuple[torch.Tensor, torch.Tensor],
    settings: DistillSettings,
) -> float:
    """One pass over the texts toward the teacher's logits and pooled vectors.

    The loader's labels are row numbers into `targets`. Returns the mean loss.
    """
    total, batches = 0.0, 0
    for batch in loader:
        total += distill_step(
            student, batch, optimizer, targets=targets, settings=settings
        )
        batches += 1
    return total / max(batches, 1)


def distill_step(
    student: PooledBertForSequenceClassification,
    batch: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    targets: tuple[torch.Tensor, torch.Tensor],
    settings: DistillSettings,
) -> float:
    """One step toward the teacher's targets, whose rows are the batch's "labels".

    On a CPU the batch runs in chunks of texts of about the same length
    (`length_chunks`), their gradients added up before the one update: the
    batch's loss is a mean over its rows, so the step is the whole batch's,
    on fewer padding tokens. The forward pass and loss run at
    `distill.precision`; the update in float32. Returns the batch's loss.
    """
    rows, device = len(batch["labels"]), model_device(student)
    on_cpu = device.type == "cpu"
    chunks = length_chunks(batch, chunk_cost=CHUNK_COST) if on_cpu else [batch]
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for chunk in chunks:
        with forward_precision(settings.precision, device):
            loss = distill_loss(student, chunk, targets=targets, settings=settings)
            share = loss * (len(chunk["labels"]) / rows)
        share.backward()
        total += float(share.detach())
    optimizer.step()
    return total


def distill_loss(
    student: PooledBertForSequenceClassification,
    batch: Mapping[str, torch.Tensor],
    *,
    targets: tuple[torch.Tensor, torch.Tensor],
    settings: DistillSettings,
) -> torch.Tensor:
    """The student's forward pass and loss on one batch, before any update.

    Apart from `distill_step` so that the forward pass alone runs under
    autocast (`forward_precision`).
    """
    teacher_logits, teacher_vectors = targets
    rows = batch["labels"]
    vectors = student.embed(**text_inputs(batch, model_device(student)))
    return settings.kl_weight * soft_target_loss(
        student.classify(vectors),
        teacher_logits[rows],
        temperature=settings.temperature,
    ) + settings.hidden_weight * pooled_match_loss(vectors, teacher_vectors[rows])


def federated_distill_loss(
    teacher: nn.Module, *, temperature: float
) -> Callable[[torch.Tensor, Batch], torch.Tensor]:
    """A client's distillation loss: the student's logits against the teacher's.

    For `training.train_epochs(loss_fn=...)`. The teacher runs without
    gradients on the same batch; each record's term depends on that record
    only, so DP-SGD's per-example clipping bounds its influence as usual.
    """
    teacher.eval()

    def loss(student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        assert isinstance(batch, Mapping)
        with torch.no_grad():
            target = teacher(**text_inputs(batch, model_device(teacher))).logits
        return soft_target_loss(student_logits, target, temperature=temperature)

    return loss
