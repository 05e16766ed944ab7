"""Wrap model, optimizer and loader (and the loss) for DP-SGD with Opacus.

Each round gets a fresh `PrivacyEngine`; its accountant is used only to record
what the round actually did (noise, sample rate, steps), so the caller can
check it against the ledger charge. The budget itself lives in
`PrivacyLedger`, under the run's `privacy.accountant`, never in the engine.

Three ways of clipping per example (`privacy.grad_sample_mode`): `hooks`
materialises every example's gradient; `ghost` (Opacus' fast gradient
clipping) computes only the per-example gradient norms and then takes a second
backward pass on the loss reweighted by each example's clipping factor, which
gives the same clipped sum without per-example gradients; `onepass` computes the same
norms and the clipped sum from one backward pass to each layer's output
(`privacy.onepass_clipping`), for models whose trainable layers are linear,
layer-norm or embedding layers, with Opacus' optimizer adding the noise.
Ghost and onepass need the loss, so `private_training` returns a wrapped
one.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from opacus import PrivacyEngine
from opacus.accountants import IAccountant
from opacus.data_loader import CollateFnWithEmpty
from opacus.optimizers import DPOptimizerFastGradientClipping
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, IterableDataset

from fedmodel.config.modes import GRAD_SAMPLE_MODE_NAMES
from fedmodel.errors import FedmodelError
from fedmodel.model.device import model_device
from fedmodel.privacy.calibration import HistoryEntry
from fedmodel.privacy.onepass_clipping import (
    ClippedLoss,
    ClippedSumOptimizer,
    OnePassClipping,
)

logger = logging.getLogger(__name__)


class StepCounter:
    """Reports the noisy optimizer steps an Opacus engine's accountant recorded.

    Calling it returns the number of steps; `check_within` compares the
    engine's record with what the ledger was charged.
    """

    def __init__(self, accountant: IAccountant) -> None:
        self._accountant = accountant

    def __call__(self) -> int:
        """Return the number of noisy steps taken so far."""
        return sum(int(steps) for _, _, steps in self._accountant.history)

    @property
    def history(self) -> list[HistoryEntry]:
        """The engine's (noise multiplier, sample rate, steps) entries."""
        return [
            (float(sigma), float(rate), int(steps))
            for sigma, rate, steps in self._accountant.history
        ]

    def check_within(
        self, *, noise_multiplier: float, sample_rate: float, steps: int
    ) -> None:
        """Raise unless the engine spent no more than the charged entry allows.

        Every recorded step must have had at least the charged noise and at
        most the charged sample rate (gradient accumulation raises the rate),
        and there must be no more steps than charged.
        """
        for sigma, rate, _ in self.history:
            if sigma < noise_multiplier or rate > sample_rate:
                raise FedmodelError(
                    f"Opacus recorded steps at noise {sigma:g} and sample rate "
                    f"{rate:g}, but the ledger was charged for noise "
                    f"{noise_multiplier:g} and rate {sample_rate:g}: this round's "
                    "update must not be sent"
                )
        if self() > steps:
            raise FedmodelError(
                f"Opacus recorded {self()} noisy steps but the ledger was charged "
                f"for {steps}: this round's update must not be sent"
            )


# The loss a DP-SGD step backpropagates: (logits, labels) -> loss. Under ghost
# clipping Opacus' wrapper (untyped), under onepass clipping a `ClippedLoss`.
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | ClippedLoss]


@dataclass
class PrivateTraining:
    """What `private_training` returns: DP-SGD model, optimizer, loader, loss."""

    model: nn.Module
    optimizer: Optimizer
    loader: DataLoader
    steps: StepCounter
    # Mean cross-entropy; under ghost clipping Opacus' wrapper, whose
    # `backward()` takes both passes; under onepass clipping a `ClippedLoss`.
    criterion: Criterion


def private_training(
    *,
    model: nn.Module,
    optimizer: Optimizer,
    loader: DataLoader,
    noise_multiplier: float,
    max_grad_norm: float,
    grad_sample_mode: str = "hooks",
) -> PrivateTraining:
    """DP-SGD versions of model, optimizer and loader, a step counter and the loss.

    The loader switches to Poisson sampling at rate 1 / len(loader); the
    optimizer clips each example's gradient to `max_grad_norm` (by
    `grad_sample_mode`) and adds Gaussian noise of std `noise_multiplier *
    max_grad_norm`. The model must pass Opacus' module validation. `ghost`
    and `onepass` need the loss computed by the returned `criterion`.
    """
    _check_args(
        model=model,
        loader=loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        grad_sample_mode=grad_sample_mode,
    )
    engine = _engine()
    common = {
        "module": model,
        "optimizer": optimizer,
        "data_loader": loader,
        "noise_multiplier": noise_multiplier,
        "max_grad_norm": max_grad_norm,
        "poisson_sampling": True,
        # Opacus draws the noise on the parameters' device with this
        # generator, and torch refuses a generator of another device.
        "noise_generator": _unpredictable_generator(model_device(model)),
    }
    dp_model, dp_optimizer, dp_loader, criterion = _make_private(
        engine, common, grad_sample_mode=grad_sample_mode
    )
    _private_sampling(dp_loader)
    logger.debug(
        "DP-SGD (%s): %d Poisson batches per epoch at rate %g, noise %g, clip %g",
        grad_sample_mode,
        len(dp_loader),
        1.0 / len(loader),
        noise_multiplier,
        max_grad_norm,
    )
    return PrivateTraining(
        dp_model, dp_optimizer, dp_loader, StepCounter(engine.accountant), criterion
    )


def _make_private(
    engine: PrivacyEngine, common: dict[str, Any], *, grad_sample_mode: str
) -> tuple[nn.Module, Optimizer, DataLoader, Criterion]:
    """Opacus' `make_private` for one clipping method, and the loss to train with."""
    if grad_sample_mode == "hooks":
        dp_model, dp_optimizer, dp_loader = engine.make_private(
            **common, grad_sample_mode="hooks"
        )
        return dp_model, dp_optimizer, dp_loader, nn.functional.cross_entropy
    # Onepass clipping adds its clipped sum where ghost's second pass does, so
    # it takes Opacus' ghost optimizer (noise, averaging, accounting).
    dp_model, dp_optimizer, criterion, dp_loader = engine.make_private(
        **common, grad_sample_mode="ghost", criterion=nn.CrossEntropyLoss()
    )
    if grad_sample_mode == "onepass":
        dp_model.remove_hooks()  # Opacus' norm hooks; OnePassClipping replaces them
        if not isinstance(dp_optimizer, DPOptimizerFastGradientClipping):
            raise TypeError(f"expected Opacus' ghost optimizer, got {dp_optimizer}")
        dp_optimizer.__class__ = ClippedSumOptimizer  # same state, cheaper copy
        clipping = OnePassClipping(dp_model, max_grad_norm=common["max_grad_norm"])
        criterion = clipping.criterion
    return dp_model, dp_optimizer, dp_loader, criterion


def _check_args(
    *,
    model: nn.Module,
    loader: DataLoader,
    noise_multiplier: float,
    max_grad_norm: float,
    grad_sample_mode: str,
) -> None:
    """Refuse arguments DP-SGD cannot run with; put the model in training mode."""
    if grad_sample_mode not in GRAD_SAMPLE_MODE_NAMES:
        raise FedmodelError(
            f"privacy.grad_sample_mode must be one of {list(GRAD_SAMPLE_MODE_NAMES)}, "
            f"got {grad_sample_mode!r}"
        )
    if not noise_multiplier >= 0.0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}")
    if not max_grad_norm > 0.0:
        raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm!r}")
    if isinstance(loader.dataset, IterableDataset):
        raise ValueError("Poisson sampling needs a map-style dataset, not iterable")
    model.train()
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        listed = "; ".join(str(problem) for problem in problems)
        raise FedmodelError(
            f"the model cannot be trained with DP-SGD: {listed}. Choose a model "
            "without these layers (e.g. GroupNorm instead of BatchNorm)"
        )


def _engine() -> PrivacyEngine:
    with warnings.catch_warnings():
        # Opacus warns on every engine that secure RNG is off; it needs
        # torchcsprng, which is not part of this install.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        # Only the accountant's step history is read (StepCounter); which
        # accountant records it does not matter, and RDP's is the cheapest.
        return PrivacyEngine(accountant="rdp", secure_mode=False)


def _private_sampling(loader: DataLoader) -> None:
    # Opacus would otherwise sample batches from torch's global generator,
    # which run code seeds from the config: the server knows that seed.
    sampler = loader.batch_sampler
    if not isinstance(sampler, UniformWithReplacementSampler):
        raise TypeError(f"expected Opacus' Poisson sampler, got {type(sampler)}")
    sampler.generator = _unpredictable_generator(torch.device("cpu"))
    _shape_empty_batches(loader)


def _unpredictable_generator(device: torch.device) -> torch.Generator:
    """A generator on `device` seeded from OS entropy, never from the run's seed.

    The server knows the run config; noise or sampling derived from its seed
    could be replayed and the noise subtracted from an update.
    """
    generator = torch.Generator(device=device)
    generator.seed()
    return generator


def _shape_empty_batches(loader: DataLoader) -> None:
    """Teach Opacus' empty-batch collator the batch structure up front.

    Opacus shapes an empty Poisson batch like the first non-empty one; when the
    very first batch is empty it falls back to a list built from dataset[0],
    which breaks for dict-shaped (tokenized text) examples. Only the structure
    is used: an empty batch has zero rows.
    """
    collate = loader.collate_fn
    if isinstance(collate, CollateFnWithEmpty) and collate.first_batch is None:
        example = [loader.dataset[0]]
        wrapped = collate.wrapped_collator_fn
        collate.first_batch = wrapped(example) if wrapped else example
