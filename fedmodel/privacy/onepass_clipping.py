"""Per-example clipping in one backward pass, from each layer's input and output grad.

A layer's per-example weight gradient is built from two things the forward
and backward passes already have: the layer's input and the gradient of the
loss at its output (`privacy.layer_grads` has the forms for linear,
layer-norm and embedding layers). So one backward pass, taken only down to
each trainable layer's output (`torch.autograd.grad` skips the
weight-gradient products a normal backward computes), gives every example's
norm across all layers, the clipping factors, and the clipped sum. Opacus'
ghost clipping computes the same norms and then takes a second backward pass
for the sum.

In head mode the only trainable layer is the classifier on pooled features,
so its output grads are the logits' (softmax minus one-hot, in closed form)
and no autograd runs at all.

`private_training` still builds Opacus' fast-gradient-clipping optimizer and
Poisson loader (`grad_sample_mode="onepass"`); the clipped sum is written
where Opacus' own ghost pass leaves it (the parameters' `.grad`), so Opacus
adds the noise, averages over the expected batch and records the step as it
does after its own clipping. Layers are assumed batch-first, as Opacus
assumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from opacus.optimizers import DPOptimizerFastGradientClipping
from torch import nn

from fedmodel.errors import FedmodelError
from fedmodel.privacy.layer_grads import TRACKED_LAYERS, LayerGrads, layer_grads

# Opacus' clipping factor is min(1, C / (norm + 1e-6)); the same guard here
# keeps this mode's update equal to hooks' and ghost's.
NORM_GUARD = 1e-6
_OTHER_MODES = "use privacy.grad_sample_mode=ghost or hooks for this model"


@dataclass
class _Call:
    """One trainable layer's input and output in a forward pass."""

    inputs: torch.Tensor
    output: torch.Tensor


@dataclass
class _Forward:
    """The trainable layers' calls in one forward pass of the model."""

    calls: dict[nn.Module, _Call] = field(default_factory=dict)
    repeated: list[str] = field(default_factory=list)


class ClippedLoss:
    """The mean cross-entropy of a batch; `backward()` leaves the clipped sum."""

    def __init__(
        self,
        clipping: OnePassClipping,
        forward: _Forward,
        logits: torch.Tensor,
        labels: torch.Tensor,
    ) -> None:
        self._clipping = clipping
        self._forward = forward
        self._logits = logits
        self._labels = labels
        with torch.no_grad():
            self._log_probs = nn.functional.log_softmax(logits, dim=1)

    def detach(self) -> torch.Tensor:
        """The batch's mean loss, outside any graph."""
        return nn.functional.nll_loss(self._log_probs, self._labels)

    def backward(self) -> None:
        """Add the sum of the clipped per-example gradients to the layers' grads."""
        # d(cross-entropy_i)/d(logits_i) = softmax(logits_i) - onehot(label_i)
        per_logit = self._log_probs.exp()
        rows = torch.arange(len(self._labels), device=per_logit.device)
        per_logit[rows, self._labels] -= 1.0
        self._clipping.accumulate(self._forward, self._logits, per_logit)


class ClippedSumOptimizer(DPOptimizerFastGradientClipping):
    """Opacus' ghost-clipping optimizer, keeping the clipped sum by a tensor copy.

    Opacus keeps the sum apart from `.grad` with `copy.deepcopy`, whose Python
    bookkeeping cost the head's DP step about 0.15 ms (160 microseconds
    against 8 for a copy of the head's weight and bias on this machine), as
    much as drawing the noise. The values are the same; noise, averaging and
    accounting stay Opacus'.
    """

    def accumulate(self) -> None:
        """Add each parameter's `.grad` (the clipped sum) to its `summed_grad`."""
        for param in self.params:
            grad = param.grad.detach()
            if param.summed_grad is None:
                param.summed_grad = grad.clone()
            else:
                param.summed_grad.add_(grad)


class OnePassClipping:
    """Clips per example for `model`, whose trainable layers are all tracked kinds.

    Every trainable parameter must belong to an `nn.Linear`, `nn.LayerNorm` or
    `nn.Embedding`, each called once per forward pass on batch-first inputs.
    Its `criterion(logits, labels)` must get logits that a trainable layer
    produced in the model's latest forward pass; anything else is refused.
    """

    def __init__(self, model: nn.Module, *, max_grad_norm: float) -> None:
        if not max_grad_norm > 0.0:
            raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm!r}")
        self._max_grad_norm = max_grad_norm
        self._names = _trainable_layers(model)
        self._forward = _Forward()
        model.register_forward_pre_hook(self._start)
        for layer in self._names:
            layer.register_forward_hook(self._remember)

    def _start(self, module: nn.Module, args: object) -> None:
        if torch.is_grad_enabled():  # an evaluation pass leaves the last one
            self._forward = _Forward()

    def _remember(
        self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        if not torch.is_grad_enabled():
            return
        if layer in self._forward.calls:
            self._forward.repeated.append(self._names[layer])
        self._forward.calls[layer] = _Call(inputs[0], output)

    def criterion(self, logits: torch.Tensor, labels: torch.Tensor) -> ClippedLoss:
        """The batch's loss, whose backward clips each example's gradient."""
        if not any(call.output is logits for call in self._forward.calls.values()):
            raise FedmodelError(
                "privacy.grad_sample_mode=onepass needs the logits a trainable "
                "linear layer produced in the model's latest forward pass; these "
                f"logits are not; {_OTHER_MODES}"
            )
        return ClippedLoss(self, self._forward, logits, labels)

    def accumulate(
        self, forward: _Forward, logits: torch.Tensor, per_logit: torch.Tensor
    ) -> None:
        """Add sum_i c_i * grad_i to the trainable parameters' grads.

        `forward` must still be the model's latest forward pass: the inputs it
        holds belong to that batch, and another batch's records must not
        enter this step's sum.
        """
        if forward is not self._forward:
            raise FedmodelError(
                "privacy.grad_sample_mode=onepass: the loss being backpropagated is "
                "not from the model's latest forward pass (one forward pass, then "
                "backward(), then the optimizer step)"
            )
        if forward.repeated:
            raise FedmodelError(
                "privacy.grad_sample_mode=onepass needs each trainable layer called "
                f"once per forward pass; {sorted(set(forward.repeated))} ran more "
                f"than once; {_OTHER_MODES}"
            )
        self._forward = _Forward()  # consumed: a second backward is refused
        if len(per_logit) == 0:  # an empty Poisson batch: a zero sum, noised
            self._zero_missing_grads()
            return
        grads = _per_layer_grads(forward, logits, per_logit, self._names)
        with torch.no_grad():
            squared = grads[0].squared_norms()
            for grad in grads[1:]:
                squared = squared + grad.squared_norms()
            factors = (self._max_grad_norm / (squared.sqrt() + NORM_GUARD)).clamp(
                max=1.0
            )
            for grad in grads:
                grad.add_clipped(factors)
        self._zero_missing_grads()

    def _zero_missing_grads(self) -> None:
        """Layers the loss did not reach add a zero sum, which Opacus still noises."""
        for layer in self._names:
            for param in layer.parameters(recurse=False):
                if param.requires_grad and param.grad is None:
                    param.grad = torch.zeros_like(param)


def _per_layer_grads(
    forward: _Forward,
    logits: torch.Tensor,
    per_logit: torch.Tensor,
    names: dict[nn.Module, str],
) -> list[LayerGrads]:
    """Each called layer's per-example gradients, from one pass to its output."""
    rows = len(per_logit)
    # The layer that produced the logits has their gradient already; autograd
    # runs (only down to the other layers' outputs) when there are others.
    output_grads: dict[nn.Module, torch.Tensor | None] = {}
    below = []
    for layer, call in forward.calls.items():
        if call.output is logits:
            output_grads[layer] = per_logit
        else:
            below.append(layer)
    if below:
        found = torch.autograd.grad(
            logits,
            [forward.calls[layer].output for layer in below],
            grad_outputs=per_logit,
            allow_unused=True,
        )
        output_grads.update(zip(below, found, strict=True))
    grads: list[LayerGrads] = []
    for layer, call in forward.calls.items():
        output_grad = output_grads[layer]
        if output_grad is None:  # the loss does not depend on this layer
            continue
        batch = call.inputs.shape[0] if call.inputs.dim() else 0
        if batch != rows or len(output_grad) != rows:
            raise FedmodelError(
                f"privacy.grad_sample_mode=onepass: layer {names[layer]!r} saw "
                f"inputs of shape {tuple(call.inputs.shape)} for a batch of {rows} "
                "examples (layers must be batch-first, one row per example; an "
                "input shared by the batch, such as BERT's position ids, is not); "
                f"freeze that layer or {_OTHER_MODES}"
            )
        grads.append(layer_grads(layer, call.inputs, output_grad.detach()))
    return grads


def _trainable_layers(model: nn.Module) -> dict[nn.Module, str]:
    """The layers holding `model`'s trainable parameters, by name; refuse others."""
    layers: dict[nn.Module, str] = {}
    owners: dict[int, str] = {}
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        # Named as in the user's model, not under Opacus' wrapper (`_module.`).
        label = name.removeprefix("_module.") or type(module).__name__
        if not isinstance(module, TRACKED_LAYERS):
            raise FedmodelError(
                "privacy.grad_sample_mode=onepass clips models whose trainable "
                "parameters all belong to linear, layer-norm or embedding layers; "
                f"{label!r} is a {type(module).__name__}; {_OTHER_MODES}"
            )
        if isinstance(module, nn.Embedding) and (
            module.max_norm is not None or module.scale_grad_by_freq or module.sparse
        ):
            raise FedmodelError(
                f"privacy.grad_sample_mode=onepass: embedding {label!r} uses "
                f"max_norm, scale_grad_by_freq or sparse gradients; {_OTHER_MODES}"
            )
        for param in own:
            if id(param) in owners:
                raise FedmodelError(
                    f"privacy.grad_sample_mode=onepass: {label!r} shares a trainable "
                    f"parameter with {owners[id(param)]!r}; {_OTHER_MODES}"
                )
            owners[id(param)] = label
        layers[module] = label
    if not layers:
        raise FedmodelError(
            "privacy.grad_sample_mode=onepass: the model has no trainable parameters"
        )
    return layers
