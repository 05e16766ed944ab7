"""The arithmetic of server distillation's forward pass: float32 or bfloat16.

`distill.precision=bf16` runs the student's forward pass and loss under
bfloat16 autocast; its weights, their gradients and AdamW stay float32.
Refused before round 1 where the device has no bfloat16 arithmetic, where
PyTorch would compute it slowly in software instead.
"""

from __future__ import annotations

import contextlib

import torch

from fedmodel.errors import FedmodelError

# distill.precision: the dtype the forward pass autocasts to (None: float32).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def has_bfloat16(device: torch.device) -> bool:
    """Whether PyTorch computes bfloat16 on `device` in hardware.

    On a CPU: oneDNN's bfloat16 kernels (x86 with AVX-512, or Arm with
    bf16 instructions); on CUDA: a GPU of compute capability 8.0 or newer.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse `distill.precision=bf16` on a device without bfloat16 arithmetic."""
    if PRECISIONS[precision] is not None and not has_bfloat16(device):
        raise FedmodelError(
            f"distill.precision={precision} but the {device.type} device this run "
            "distils on has no bfloat16 arithmetic that PyTorch uses (on a CPU: "
            "AVX-512 or Arm bf16 instructions), so bfloat16 would be slower than "
            "float32: set distill.precision=fp32"
        )


def forward_precision(
    precision: str, device: torch.device
) -> contextlib.AbstractContextManager[None]:
    """Autocast for the forward pass at `precision` on `device` (float32: none)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    check_precision(precision, device)
    return torch.autocast(device.type, dtype=dtype)
