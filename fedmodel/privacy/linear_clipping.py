"""Per-example clipping of one linear layer on fixed features, in one pass.

In head mode the only trainable layer is the classifier, on features the
frozen encoder computed once: the logits of example i are z_i = W x_i + b. The
gradient of its loss l_i is the outer product g_i x_i^T (and g_i for the bias),
with g_i = dl_i/dz_i, so its norm is ||g_i|| * sqrt(||x_i||^2 + 1) (without
the 1 when the bias is held) and the sum of the clipped gradients is a single
matrix product, (c * G)^T X. This is the norm ghost clipping computes; Opacus
then takes a second backward pass through the model to form the clipped sum,
which for a single layer is this product.

`private_training` still builds Opacus' fast-gradient-clipping optimizer and
Poisson loader (`grad_sample_mode="linear"`); the clipped sum is written where
Opacus' own ghost pass leaves it (the parameters' `.grad`), so Opacus adds the
noise, averages over the expected batch and records the step as it does after
its own clipping.
"""

from __future__ import annotations

import torch
from torch import nn

from fedmodel.errors import FedmodelError

# Opacus' clipping factor is min(1, C / (norm + 1e-6)); the same guard here
# keeps the two modes' updates equal.
NORM_GUARD = 1e-6


class ClippedLoss:
    """The mean cross-entropy of a batch; `backward()` leaves the clipped sum."""

    def __init__(
        self, clipping: LinearClipping, logits: torch.Tensor, labels: torch.Tensor
    ) -> None:
        self._clipping = clipping
        self._logits = logits
        self._labels = labels
        with torch.no_grad():
            self._log_probs = nn.functional.log_softmax(logits, dim=1)

    def detach(self) -> torch.Tensor:
        """The batch's mean loss, outside any graph."""
        return nn.functional.nll_loss(self._log_probs, self._labels)

    def backward(self) -> None:
        """Add the sum of the clipped per-example gradients to the layer's grads."""
        # d(cross-entropy_i)/d(logits_i) = softmax(logits_i) - onehot(label_i)
        per_logit = self._log_probs.exp()
        rows = torch.arange(len(self._labels), device=per_logit.device)
        per_logit[rows, self._labels] -= 1.0
        self._clipping.accumulate(per_logit, logits=self._logits)


class LinearClipping:
    """Clips per example for `model`, whose trainable part is one linear layer.

    Its `criterion(logits, labels)` must get the logits that layer just
    produced; anything else (a layer after it, a second forward pass) is refused.
    """

    def __init__(self, model: nn.Module, *, max_grad_norm: float) -> None:
        if not max_grad_norm > 0.0:
            raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm!r}")
        self._layer = _trainable_linear(model)
        self._max_grad_norm = max_grad_norm
        self._inputs: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self._layer.register_forward_hook(self._remember)

    def _remember(
        self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        self._inputs, self._output = inputs[0], output

    def criterion(self, logits: torch.Tensor, labels: torch.Tensor) -> ClippedLoss:
        """The batch's loss, whose backward clips each example's gradient."""
        if logits is not self._output:
            raise FedmodelError(
                "privacy.grad_sample_mode=linear clips a model whose logits are its "
                "one trainable linear layer's output; these logits are not. Use "
                "grad_sample_mode=ghost or hooks for this model"
            )
        return ClippedLoss(self, logits, labels)

    def accumulate(self, per_logit: torch.Tensor, *, logits: torch.Tensor) -> None:
        """Add sum_i c_i * grad_i to the layer's grads, from each dl_i/dz_i.

        `logits` must still be the layer's latest output: the inputs it
        remembers belong to that batch, and another batch's records must not
        enter this step's sum.
        """
        inputs = self._inputs
        if inputs is None or logits is not self._output:
            raise FedmodelError(
                "privacy.grad_sample_mode=linear: the loss being backpropagated is "
                "not from the layer's latest forward pass (one forward pass, then "
                "backward(), then the optimizer step)"
            )
        if inputs.dim() != 2:
            raise FedmodelError(
                "privacy.grad_sample_mode=linear needs one feature vector per "
                f"example, got inputs of shape {tuple(inputs.shape)}; use "
                "grad_sample_mode=ghost"
            )
        bias = self._layer.bias
        train_bias = bias is not None and bias.requires_grad
        with torch.no_grad():
            inputs = inputs.detach()
            input_norms = torch.linalg.vector_norm(inputs, dim=1)
            if train_bias:  # the bias's gradient is dl_i/dz_i itself
                input_norms = torch.sqrt(input_norms.square() + 1.0)
            norms = torch.linalg.vector_norm(per_logit, dim=1) * input_norms
            factors = (self._max_grad_norm / (norms + NORM_GUARD)).clamp(max=1.0)
            clipped = per_logit * factors.unsqueeze(1)
            _add_grad(self._layer.weight, clipped.T @ inputs)
            if train_bias:
                assert bias is not None
                _add_grad(bias, clipped.sum(dim=0))
        self._inputs = self._output = None


def _trainable_linear(model: nn.Module) -> nn.Linear:
    """The one linear layer that holds every trainable parameter of `model`."""
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.weight.requires_grad:
            own = {id(p) for p in module.parameters(recurse=False) if p.requires_grad}
            if own == trainable:
                return module
    raise FedmodelError(
        "privacy.grad_sample_mode=linear needs a model whose only trainable "
        "parameters are one linear layer's (finetune.mode=head); use "
        "grad_sample_mode=ghost or hooks"
    )


def _add_grad(param: torch.Tensor, grad: torch.Tensor) -> None:
    param.grad = grad if param.grad is None else param.grad + grad
