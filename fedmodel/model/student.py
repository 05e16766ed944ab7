"""The student: a smaller classifier cut out of the teacher (DistilBERT-style).

It keeps the teacher's embeddings, pooling, head and tokenizer, a subset of its
transformer layers and, optionally, the most important slice of each kept
layer's feed-forward units, so it starts close to the teacher's function.
"""

from __future__ import annotations

import torch

from fedmodel.config import StudentSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import (
    PooledBertConfig,
    PooledBertForSequenceClassification,
)
from fedmodel.model.device import model_device

LAYER_PREFIX = "bert.encoder.layer."
FFN_IN = "intermediate.dense"
FFN_OUT = "output.dense"
# What federated distillation's rounds leave as the teacher's (not exchanged).
FIXED_IN_STUDENT_ROUNDS = "bert.embeddings."


def student_layer_indices(teacher_layers: int, student: StudentSettings) -> list[int]:
    """The teacher layers a student copies: the configured ones, or spread evenly.

    Evenly spread layers run from the first to the last (one layer: the last),
    so the student keeps the teacher's lowest and highest representations.
    """
    if student.layers is None and student.num_layers > teacher_layers:
        raise FedmodelError(
            f"distill.student.num_layers={student.num_layers}: the teacher has "
            f"{teacher_layers} layers, so a student can copy at most "
            f"{teacher_layers}; set distill.student.num_layers <= {teacher_layers}"
        )
    if student.layers is not None:
        chosen = list(student.layers)
    elif student.num_layers == 1:
        chosen = [teacher_layers - 1]
    else:
        span = teacher_layers - 1
        chosen = [
            round(i * span / (student.num_layers - 1))
            for i in range(student.num_layers)
        ]
    bad = [i for i in chosen if not 0 <= i < teacher_layers]
    if bad or len(set(chosen)) != len(chosen):  # distinct, in range: at most all
        raise FedmodelError(
            f"distill.student.layers {chosen}: need distinct layer indices in "
            f"0..{teacher_layers - 1} (the teacher has {teacher_layers} layers), "
            f"at most {teacher_layers} of them"
        )
    return chosen


def student_width(teacher_units: int, student: StudentSettings) -> int:
    """Feed-forward units per student layer: the configured share, at least one."""
    share = student.feed_forward_share
    if not 0 < share <= 1:
        raise FedmodelError(
            f"distill.student.feed_forward_share {share}: must be above 0 and at "
            "most 1 (1.0 keeps all of the teacher's feed-forward units)"
        )
    return max(1, round(share * teacher_units))


def feed_forward_keep(
    state: dict[str, torch.Tensor], *, layer: int, width: int
) -> torch.Tensor:
    """The `width` feed-forward units of a teacher layer that matter most, in order.

    A unit's importance is the norm of its input weights times the norm of its
    output weights (how much it can move the layer's output); the kept units
    are returned in their original order.
    """
    prefix = f"{LAYER_PREFIX}{layer}."
    weight_in = state[f"{prefix}{FFN_IN}.weight"]  # [units, hidden]
    weight_out = state[f"{prefix}{FFN_OUT}.weight"]  # [hidden, units]
    importance = weight_in.norm(dim=1) * weight_out.norm(dim=0)
    return torch.sort(torch.topk(importance, width).indices).values


def build_student(
    teacher: PooledBertForSequenceClassification, student: StudentSettings
) -> PooledBertForSequenceClassification:
    """A smaller classifier initialised from the teacher; the teacher is untouched.

    Each layer keeps `student.feed_forward_share` of the teacher's feed-forward
    units (at least one), the most important ones (`feed_forward_keep`).
    """
    layers = student_layer_indices(teacher.config.num_hidden_layers, student)
    width = student_width(teacher.config.intermediate_size, student)
    config = PooledBertConfig.from_dict(
        {
            **teacher.config.to_dict(),
            "num_hidden_layers": len(layers),
            "intermediate_size": width,
        }
    )
    model = PooledBertForSequenceClassification(config)
    teacher_state = teacher.state_dict()
    keep = [
        feed_forward_keep(teacher_state, layer=layer, width=width) for layer in layers
    ]
    state = {}
    for name in model.state_dict():
        if not name.startswith(LAYER_PREFIX):
            state[name] = teacher_state[name].clone()
            continue
        index, rest = name[len(LAYER_PREFIX) :].split(".", 1)
        value = teacher_state[f"{LAYER_PREFIX}{layers[int(index)]}.{rest}"]
        if rest.startswith(FFN_IN):
            value = value[keep[int(index)]]
        elif rest == f"{FFN_OUT}.weight":
            value = value[:, keep[int(index)]]
        state[name] = value.clone()
    model.load_state_dict(state)
    # On the teacher's device, where the distillation runs beside the teacher.
    torch.nn.Module.to(model, model_device(teacher))
    return model


def prepare_student_for_distillation(
    student: PooledBertForSequenceClassification,
) -> PooledBertForSequenceClassification:
    """Train the student's transformer layers and head; keep its embeddings fixed.

    The embeddings are the teacher's and hold most of the student's weights:
    leaving them out keeps each client's update small and DP-SGD cheap.
    """
    for name, param in student.named_parameters():
        param.requires_grad = exchanged_in_student_rounds(name)
    return student


def exchanged_in_student_rounds(name: str) -> bool:
    """Whether federated distillation's rounds train and exchange this parameter.

    The others (the embeddings) each client builds from the teacher.
    """
    return not name.startswith(FIXED_IN_STUDENT_ROUNDS)
