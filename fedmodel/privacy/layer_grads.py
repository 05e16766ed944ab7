"""Per-example gradient norms and clipped sums of one layer, from its in- and output.

For a linear layer applied at positions t of example i, the weight gradient
is sum_t g_t a_t^T (a: the layer's input, g: the loss's gradient at its
output), whose squared norm is sum_{t,s} (a_t . a_s)(g_t . g_s) and whose
clipped sum over the batch is one matrix product of the factor-scaled output
grads with the inputs. A layer norm's per-example gradients are small
(sum_t g_t * xhat_t and sum_t g_t) and are formed directly; an embedding's
put each position's g_t on its token's row. `privacy.onepass_clipping`
gathers these across a model's trainable layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TRACKED_LAYERS = (nn.Linear, nn.LayerNorm, nn.Embedding)


class LinearGrads:
    """A linear layer's per-example gradients, from inputs a and output grads g."""

    def __init__(
        self, layer: nn.Linear, inputs: torch.Tensor, output_grad: torch.Tensor
    ) -> None:
        self._layer = layer
        self._rows = len(output_grad)
        # Every position of every example as one row: [rows * positions, width].
        self._a = inputs.detach().reshape(-1, layer.in_features)
        self._g = output_grad.reshape(-1, layer.out_features)
        self._positions = len(self._g) // self._rows

    def squared_norms(self) -> torch.Tensor:
        """Each example's squared gradient norm over this layer's trained weights."""
        train_weight = self._layer.weight.requires_grad
        train_bias = _trains(self._layer.bias)
        if self._positions == 1:  # ||g a^T||^2 = ||g||^2 ||a||^2, bias ||g||^2
            g_squared = _row_norms(self._g).square()
            if not train_weight:
                return g_squared
            a_squared = _row_norms(self._a).square()
            return g_squared * (a_squared + 1.0 if train_bias else a_squared)
        a = self._a.view(self._rows, self._positions, -1)
        g = self._g.view(self._rows, self._positions, -1)
        squared = (
            _weight_squared_norms(a, g)
            if train_weight
            else torch.zeros(self._rows, device=g.device)
        )
        if train_bias:
            squared = squared + g.sum(1).square().sum(1)
        return squared

    def add_clipped(self, factors: torch.Tensor) -> None:
        """Add sum_i factors_i * grad_i to the trained weights' `.grad`."""
        if self._positions > 1:
            factors = factors.repeat_interleave(self._positions)  # one per row
        clipped = self._g * factors.unsqueeze(1)
        if self._layer.weight.requires_grad:
            _add_grad(self._layer.weight, clipped.T @ self._a)
        if _trains(self._layer.bias):
            _add_grad(self._layer.bias, clipped.sum(0))


class NormGrads:
    """A layer norm's per-example gradients: sum_t g_t * xhat_t and sum_t g_t."""

    def __init__(
        self, layer: nn.LayerNorm, inputs: torch.Tensor, output_grad: torch.Tensor
    ) -> None:
        rows = len(output_grad)
        width = math.prod(layer.normalized_shape)
        normalized = nn.functional.layer_norm(
            inputs.detach(), layer.normalized_shape, eps=layer.eps
        )
        g = output_grad.reshape(rows, -1, width)
        self._layer = layer
        self._rows = rows
        self._per_example: list[tuple[nn.Parameter, torch.Tensor]] = []
        if _trains(layer.weight):
            weight = (g * normalized.reshape(rows, -1, width)).sum(1)
            self._per_example.append((layer.weight, weight))
        if _trains(layer.bias):
            self._per_example.append((layer.bias, g.sum(1)))

    def squared_norms(self) -> torch.Tensor:
        """Each example's squared gradient norm over this layer's trained weights."""
        squared = torch.zeros(self._rows, device=self._layer.weight.device)
        for _, grad in self._per_example:
            squared = squared + grad.square().sum(1)
        return squared

    def add_clipped(self, factors: torch.Tensor) -> None:
        """Add sum_i factors_i * grad_i to the trained weights' `.grad`."""
        for param, grad in self._per_example:
            _add_grad(param, (factors @ grad).view_as(param))


class EmbeddingGrads:
    """An embedding's per-example gradients: each position's g_t on its token's row."""

    def __init__(
        self, layer: nn.Embedding, inputs: torch.Tensor, output_grad: torch.Tensor
    ) -> None:
        rows = len(output_grad)
        self._layer = layer
        self._ids = inputs.reshape(rows, -1)
        g = output_grad.reshape(rows, -1, layer.embedding_dim)
        if layer.padding_idx is not None:  # that row never gets a gradient
            g = g * (self._ids != layer.padding_idx).unsqueeze(-1)
        self._g = g

    def squared_norms(self) -> torch.Tensor:
        """Each example's squared gradient norm over this layer's trained weights."""
        same_row = self._ids.unsqueeze(2) == self._ids.unsqueeze(1)
        gram_g = torch.bmm(self._g, self._g.transpose(1, 2))
        return (gram_g * same_row).sum((1, 2))

    def add_clipped(self, factors: torch.Tensor) -> None:
        """Add sum_i factors_i * grad_i to the trained weights' `.grad`."""
        clipped = (self._g * factors.view(-1, 1, 1)).flatten(0, 1)
        summed = torch.zeros_like(self._layer.weight)
        summed.index_add_(0, self._ids.flatten(), clipped)
        _add_grad(self._layer.weight, summed)


LayerGrads = LinearGrads | NormGrads | EmbeddingGrads


def layer_grads(
    layer: nn.Module, inputs: torch.Tensor, output_grad: torch.Tensor
) -> LayerGrads:
    """The per-example gradients of one of the `TRACKED_LAYERS`."""
    if isinstance(layer, nn.Linear):
        return LinearGrads(layer, inputs, output_grad)
    if isinstance(layer, nn.LayerNorm):
        return NormGrads(layer, inputs, output_grad)
    assert isinstance(layer, nn.Embedding)
    return EmbeddingGrads(layer, inputs, output_grad)


def _weight_squared_norms(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """||sum_t g_t a_t^T||^2 per example, for a and g of [rows, positions, width]."""
    positions, width_in, width_out = a.shape[1], a.shape[2], g.shape[2]
    if positions * (width_in + width_out) < width_in * width_out:
        # sum over positions t, s of (a_t . a_s)(g_t . g_s): cheaper than each
        # example's gradient while the positions are few against the widths
        gram_a = torch.bmm(a, a.transpose(1, 2))
        gram_g = torch.bmm(g, g.transpose(1, 2))
        return (gram_a * gram_g).sum((1, 2))
    # each example's [out, in] gradient: narrow layers (LoRA's) or long inputs
    return torch.bmm(g.transpose(1, 2), a).square().sum((1, 2))


def _row_norms(rows: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(rows, dim=1)  # one pass, no squared copy


def _trains(param: nn.Parameter | None) -> bool:
    return param is not None and param.requires_grad


def _add_grad(param: torch.Tensor, grad: torch.Tensor) -> None:
    param.grad = grad if param.grad is None else param.grad + grad
