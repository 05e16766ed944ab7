"""A GPU's placement rules, kept by a run on the CPU.

CI has no GPU, so code that forgets to move a tensor to the model's device
passes every test there and fails at once on a user's GPU ("Expected all
tensors to be on the same device"): the label-name start and the student did,
on an H200. `SimulatedGpu` is a torch function mode that keeps a CPU run to a
GPU's rules. Inside it `device=auto` (or cuda) resolves to the mode's own
`device` object, the GPU. A tensor is on the GPU when it was moved there
(`.to` that object, or `nn.Module.to` it), made there (a factory with
`device=` it) or computed from one that was; reading `.device` of such a
tensor gives that object back, so `.to(model_device(model))` moves there as
on a GPU. A tensor is on the CPU when the mode saw it made without a device
(a tokenizer's output, `torch.tensor(...)`) or brought back by `.cpu()`.

The mode raises `DeviceMix` where a GPU would refuse: an operation between a
tensor on the GPU and one on the CPU (a 0-dimensional CPU tensor excepted,
as torch allows), embedding lookups and `index_select` included, and
`.numpy()` of a tensor on the GPU. Indexing with `[]` takes CPU indices on a
GPU too, so its indices are not checked; copies between devices are allowed.
Tensors the mode never saw made (autograd's outputs but gradients, which sit
with their parameters; Opacus' per-example gradients; tensors made before
it), and those moved `.to` a device read off them, are on neither and never
refused.

Places follow storages (a view shares its base's). A `.to` or `.cpu()` that
torch answers with the same tensor on the CPU is answered with a copy here,
so the source keeps its own place, as on a GPU.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import fedmodel.model.device as device_module


class DeviceMix(RuntimeError):
    """What a GPU would refuse: tensors on two devices in one operation."""


_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
# Copies and bookkeeping take tensors from two devices on a GPU too.
_COPIES = {"copy_", "set_", "__set__", "__get__", "_has_compatible_shallow_copy_type"}
_MOVES_TO_GPU = {torch.Tensor.to}
_MOVES_TO_CPU = {torch.Tensor.cpu}
GPU, CPU = "gpu", "cpu"
# What reading `Tensor.device` calls: the property's getter.
_DEVICE_PROPERTY = torch.Tensor.device
_GRAD_PROPERTY = torch.Tensor.grad


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor in an argument, through lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", None) or repr(func)


class SimulatedGpu(TorchFunctionMode):
    """Within it, tensors keep to a GPU's placement rules (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        # The GPU: a device object of its own, which `Tensor.device` returns
        # for a tensor on it, so `.to(model_device(model))` moves there.
        self.device = torch.device("cpu")
        self._moving_a_module = False
        self._undo: list[Callable[[], None]] = []
        self._places: dict[int, tuple[weakref.ref[torch.UntypedStorage], str]] = {}

    def __enter__(self) -> SimulatedGpu:
        """Also route `device=auto` (and cuda) and `nn.Module.to` to the GPU."""
        resolve = device_module.resolve_device
        module_to = nn.Module.to

        def to_gpu(name: str) -> torch.device:
            return (
                self.device
                if name == "auto" or name.startswith("cuda")
                else resolve(name)
            )

        def to(module: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
            # nn.Module.to parses its device anew: say here which one it was.
            self._moving_a_module = any(a is self.device for a in args) or (
                kwargs.get("device") is self.device
            )
            try:
                return module_to(module, *args, **kwargs)
            finally:
                self._moving_a_module = False

        device_module.resolve_device = to_gpu  # type: ignore[assignment]
        nn.Module.to = to  # type: ignore[method-assign,assignment]
        self._undo = [
            lambda: setattr(device_module, "resolve_device", resolve),
            lambda: setattr(nn.Module, "to", module_to),
        ]
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for undo in self._undo:
            undo()

    def place(self, tensor: torch.Tensor) -> str | None:
        """GPU or CPU where the mode has seen the tensor made; else None."""
        if tensor.is_meta or tensor.layout != torch.strided:
            return None
        storage = tensor.untyped_storage()
        seen = self._places.get(storage.data_ptr())
        if storage.data_ptr() == 0 or seen is None or seen[0]() is not storage:
            return None
        return seen[1]

    def _put(self, value: Any, place: str | None) -> None:
        if place is None:
            return
        for tensor in _tensors(value):
            storage = tensor.untyped_storage()
            if storage.data_ptr() != 0:
                self._places[storage.data_ptr()] = (weakref.ref(storage), place)

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__self__", None) is _DEVICE_PROPERTY:
            return self.device if self.place(args[0]) == GPU else func(*args, **kwargs)
        if func in _MOVES_TO_GPU or func in _MOVES_TO_CPU:
            return self._move(func, args, kwargs)
        if func is torch.Tensor.numpy and self.place(args[0]) == GPU:
            raise DeviceMix("numpy() of a tensor on the GPU: call .cpu() first")
        places = self._checked_places(func, args, kwargs)
        out = func(*args, **kwargs)
        if getattr(func, "__self__", None) is _GRAD_PROPERTY:
            # Autograd makes a gradient where its parameter is.
            self._put(out, self.place(args[0]))
        elif _name(func) in _COPIES:
            return out
        elif GPU in places or kwargs.get("device") is self.device:
            self._put(out, GPU)
        elif CPU in places or (not places and kwargs.get("device") is None):
            self._put(out, CPU)
        return out

    def _move(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        source = args[0]
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.untyped_storage().data_ptr() == (
            source.untyped_storage().data_ptr()
        ):
            out = out.clone()
        if func in _MOVES_TO_CPU:
            self._put(out, CPU)
        elif self._moving_a_module or self._names_the_gpu(args, kwargs):
            self._put(out, GPU)
        elif not self._names_a_device(args, kwargs):
            self._put(out, self.place(source))
        # Another device, read off a tensor the mode never saw made: unknown.
        return out

    def _names_the_gpu(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether a `Tensor.to` call moves to the GPU."""
        targets = [*args[1:], kwargs.get("device")]
        return any(
            t is self.device or (isinstance(t, torch.Tensor) and self.place(t) == GPU)
            for t in targets
        )

    @staticmethod
    def _names_a_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether a `Tensor.to` call names a device (not only a dtype)."""
        targets = [*args[1:], kwargs.get("device")]
        return any(isinstance(t, (torch.device, str, torch.Tensor)) for t in targets)

    def _checked_places(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> set[str | None]:
        """Where the operation's tensors are; DeviceMix where on both."""
        checked = args[:1] if func in _INDEXING else args
        tensors = [*_tensors(checked), *_tensors(kwargs)]
        places = [self.place(t) for t in tensors]
        if _name(func) in _COPIES or GPU not in places:
            return set(places)
        strays = [
            tuple(t.shape)
            for t, p in zip(tensors, places, strict=True)
            if p == CPU and t.dim()
        ]
        if strays:
            raise DeviceMix(
                f"{_name(func)}: tensors on the GPU meet CPU tensors of shape {strays}"
            )
        return set(places)
