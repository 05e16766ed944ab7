"""distill.precision: the student's forward pass in bfloat16, its update in float32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedmodel.data.tasks import load_task
from fedmodel.data.tokenization import make_text_loader
from fedmodel.distill.inputs import teacher_targets
from fedmodel.distill.server import distill_step, server_optimizer
from fedmodel.errors import FedmodelError
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.model.student import build_student
from tests.conftest import small_settings


def _step_dtypes(precision: str) -> tuple[set[torch.dtype], set[torch.dtype]]:
    """Dtypes of the linear layers' outputs in a step; of weights, grads, AdamW."""
    settings = small_settings(f"distill.precision={precision}")
    task = load_task(settings.task, seed=settings.seed)
    teacher = build_classifier(settings.model, label_names=task.label_names, seed=0)
    tokenizer = load_tokenizer(settings.model)
    texts = list(task.transfer["text"])[:16]
    targets = teacher_targets(
        teacher.eval(), texts, tokenizer=tokenizer, max_length=32, seed=0
    )
    loader = make_text_loader(
        tokenizer,
        texts,
        list(range(16)),
        max_length=32,
        batch_size=16,
        shuffle=False,
        seed=0,
    )
    student = build_student(teacher, settings.distill.student).train()
    optimizer = server_optimizer(student, settings.distill)
    outputs: set[torch.dtype] = set()
    for module in student.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda _m, _i, out: outputs.add(out.dtype))
    loss = distill_step(
        student,
        next(iter(loader)),
        optimizer,
        targets=targets,
        settings=settings.distill,
    )
    assert loss > 0
    kept = {p.dtype for p in student.parameters()}
    kept |= {p.grad.dtype for p in student.parameters() if p.grad is not None}
    kept |= {
        value.dtype
        for state in optimizer.state.values()
        for value in state.values()
        if value.is_floating_point()
    }
    return outputs, kept


def test_bf16_runs_the_forward_pass_in_bfloat16_and_keeps_float32_weights() -> None:
    assert _step_dtypes("bf16") == ({torch.bfloat16}, {torch.float32})
    assert _step_dtypes("fp32") == ({torch.float32}, {torch.float32})


def test_an_unknown_precision_names_the_key_and_the_choices() -> None:
    with pytest.raises(
        FedmodelError,
        match=r"distill.precision must be one of \['fp32', 'bf16'\], got 'fp16'",
    ):
        small_settings("distill.precision=fp16")
