"""Dropout in local training: a stream of its own per (seed, client, round)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import fedmodel.client.local_round as local_round
from fedmodel.client.local_round import run_local_round
from fedmodel.config import RunSettings, settings_from_dict
from fedmodel.data.clients import load_client_data
from fedmodel.model.finetune import prepare_for_finetuning
from fedmodel.model.head import trainable_state
from fedmodel.model.load import build_classifier
from tests.conftest import small_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Full backward hook is firing",
    "ignore:.*is_gradient_checkpointing.*:FutureWarning",
)

# The tiny model's dropout is 0; MiniLM's, the default, is 0.1.
DROPOUT = ("finetune=full", "model.dropout=0.1", "task.max_length=16")


def _first_masks(
    tmp_path: Path, privacy: str, rounds: list[tuple[int, int]]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per round, torch's generator state as training starts, and a dropout mask.

    The mask: which first-batch activations the encoder's first dropout
    zeroed. One local round on the tiny model for each (client, round) in
    `rounds`, all from the same global weights, each in a state folder of its
    own.
    """
    config = small_config("num_clients=6", f"privacy={privacy}", *DROPOUT)
    settings: RunSettings = settings_from_dict({**config, "run_dir": str(tmp_path)})
    _, _, labels = load_client_data(settings, 0)
    model = build_classifier(settings.model, label_names=labels, seed=settings.seed)
    weights = trainable_state(prepare_for_finetuning(model, settings.finetune))
    masks: list[tuple[torch.Tensor, torch.Tensor]] = []
    train_epochs = local_round.train_epochs

    def watched(module: nn.Module, *args: object, **kwargs: object) -> float:
        dropout = next(m for m in module.modules() if isinstance(m, nn.Dropout))
        seen: list[torch.Tensor] = [torch.get_rng_state()]
        hook = dropout.register_forward_hook(
            lambda _m, _i, out: seen.append(out == 0) if len(seen) == 1 else None
        )
        try:
            return train_epochs(module, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            hook.remove()
            masks.append((seen[0], seen[1]))

    local_round.train_epochs = watched  # type: ignore[assignment]
    try:
        for i, (client, round_number) in enumerate(rounds):
            run_local_round(
                settings,
                client_id=client,
                state_dir=tmp_path / f"{i}-client-{client}",
                global_weights=weights,
                round_number=round_number,
            )
    finally:
        local_round.train_epochs = train_epochs
    return masks


def test_each_client_and_round_draws_its_own_reproducible_dropout(
    tmp_path: Path,
) -> None:
    # Before, build_classifier's torch.manual_seed(seed) left every client in
    # every round at one generator state: the same masks each time.
    masks = _first_masks(tmp_path, "off", [(0, 1), (0, 2), (1, 1), (0, 1)])
    first, next_round, other_client, again = (mask for _, mask in masks)
    assert first.any()
    assert not torch.equal(first, next_round)
    assert not torch.equal(first[0], other_client[0])
    assert torch.equal(first, again)


def test_under_dpsgd_dropout_is_not_drawn_from_the_run_seed(tmp_path: Path) -> None:
    # Its Poisson batches differ run to run, so the generator is compared.
    (once, _), (again, _) = _first_masks(tmp_path, "dpsgd", [(0, 1), (0, 1)])
    assert not torch.equal(once, again)
