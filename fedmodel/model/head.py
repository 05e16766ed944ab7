"""The classification layer on its own, and the weights a round exchanges.

Torch only, no transformers: a site whose head-mode features are already on
its disk trains this layer without building the encoder. Its parameter names
match the full classifier's (`classifier.weight`, `classifier.bias`), so the
weights it exchanges are the same as the full model's in head mode.
"""

from __future__ import annotations

import torch
from torch import nn

from fedmodel.errors import FedmodelError


class FeatureHead(nn.Module):
    """Dropout and the linear classification layer, over pooled features."""

    def __init__(self, *, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from pooled text vectors."""
        return self.classifier(self.dropout(features))


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights local training moves: all that is ever exchanged."""
    return {
        name: param.detach().cpu().clone()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy exchanged weights into the model, refusing any key or shape mismatch."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(state):
        missing = sorted(set(params) - set(state))[:3]
        extra = sorted(set(state) - set(params))[:3]
        raise FedmodelError(
            f"weights do not match the model: missing {missing}, unexpected {extra};"
            " server and clients must use the same model and finetune settings"
        )
    with torch.no_grad():
        for name, value in state.items():
            if params[name].shape != value.shape:
                raise FedmodelError(
                    f"weight {name!r} has shape {tuple(value.shape)}, the model "
                    f"expects {tuple(params[name].shape)}"
                )
            params[name].copy_(value)
