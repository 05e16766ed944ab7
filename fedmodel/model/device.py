"""Which device the arithmetic runs on, and moving batches to a model's device.

The `device` key picks it: `auto` (CUDA when present, else the CPU), `cpu`,
`cuda` or `cuda:N`. The device changes where a model's forward and backward
passes run, never what a round releases or what it costs in privacy: Opacus
clips and noises on whichever device holds the parameters, and the ledger's
figures depend only on the plan. Exchanged weights and cached features always
come back to the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch
from torch import nn

from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def resolve_device(name: str) -> torch.device:
    """The torch device for a `device` setting; a missing GPU is a FedmodelError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise FedmodelError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        raise FedmodelError(
            f"device={name} but this machine has no CUDA device visible to torch: "
            "use device=auto or device=cpu"
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise FedmodelError(
            f"device={name} but this machine has {count} CUDA "
            f"{plural(count, 'device')} (cuda:0 to cuda:{count - 1})"
        )
    # A tensor names the index it sits on (cuda:0): so does the device, and
    # the two compare equal.
    if device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model without any)."""
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def batch_to(
    batch: Mapping[str, torch.Tensor], device: torch.device
) -> dict[str, torch.Tensor]:
    """A tokenized batch's tensors on `device` (no copy when already there)."""
    return {key: value.to(device) for key, value in batch.items()}


def on_device(model: ModuleT, device: str) -> ModuleT:
    """`model` moved (in place) to the device a `device` setting names."""
    nn.Module.to(model, resolve_device(device))
    return model
