"""LoRA / full fine-tuning FedAvg rounds on the clients' texts, with the run's pieces.

The encoder phase of `head_then_encoder.py`: the run's `finetune=lora` or
`finetune=full` settings (batch, optimizer, learning rate, clip, clipping
method), `private_training` and `train_epochs`, FedAvg weighted by record
count, and one noise multiplier for a history of phases; `load_seed` reads
what every arm of one seed needs (cached features, the clients' texts).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from head_features import CACHE, features, scenario_settings  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from transformers import PreTrainedTokenizerBase  # noqa: E402

from fedmodel.config import RunSettings, compose_config, settings_from_dict  # noqa: E402
from fedmodel.data.clients import load_client_data  # noqa: E402
from fedmodel.data.tasks import load_task  # noqa: E402
from fedmodel.data.tokenization import make_text_loader  # noqa: E402
from fedmodel.model.finetune import prepare_for_finetuning  # noqa: E402
from fedmodel.model.head import load_trainable_state, trainable_state  # noqa: E402
from fedmodel.model.load import build_classifier, load_tokenizer  # noqa: E402
from fedmodel.privacy.accountants import composed_epsilon  # noqa: E402
from fedmodel.privacy.client_plan import choose_delta  # noqa: E402
from fedmodel.privacy.engine import private_training  # noqa: E402
from fedmodel.privacy.noise_search import smallest_noise  # noqa: E402
from fedmodel.privacy.sampling import sample_rate_for  # noqa: E402
from fedmodel.training.embedding_cache import embed_split  # noqa: E402
from fedmodel.training.loops import (  # noqa: E402
    build_optimizer,
    criterion_loss,
    text_logits,
    train_epochs,
)


@dataclass(frozen=True)
class SeedData:
    """What every arm of one seed reads: features, texts, the two loaders' data."""

    cached: dict[str, Any]
    label_names: tuple[str, ...]
    test_features: DataLoader
    test_texts: tuple[list[str], list[int]]
    clients: list[tuple[list[str], list[int]]]
    validation_texts: tuple[list[str], list[int]]
    tokenizer: PreTrainedTokenizerBase


def load_seed(task: str, seed: int) -> SeedData:
    """The task's cached features and each client's texts, for seed `seed`."""
    settings = scenario_settings(task, seed)
    data = load_task(settings.task, seed=seed)
    test_x, test_y = embed_split(
        settings,
        model=build_classifier(settings.model, label_names=data.label_names, seed=seed),
        split=data.test,
    )
    clients, val_texts, val_labels = [], [], []
    for client in range(settings.num_clients):
        train, val, _ = load_client_data(settings, client)
        clients.append((list(train["text"]), list(train["label"])))
        val_texts += list(val["text"])
        val_labels += list(val["label"])
    return SeedData(
        cached=features(task, seed),
        label_names=data.label_names,
        test_features=DataLoader(TensorDataset(test_x, test_y), batch_size=2048),
        test_texts=(list(data.test["text"]), list(data.test["label"])),
        clients=clients,
        validation_texts=(val_texts, val_labels),
        tokenizer=load_tokenizer(settings.model),
    )


def encoder_settings(task: str, mode: str, *, seed: int, epsilon: float) -> RunSettings:
    """The run's settings for `finetune=mode` (batch, optimizer, clip, clipping)."""
    raw = compose_config(
        [
            f"task={task}",
            "num_clients=4",
            "partition=dirichlet",
            f"seed={seed}",
            f"finetune={mode}",
            f"privacy.target_epsilon={epsilon:g}",
        ]
    )
    return settings_from_dict({**raw, "run_dir": str(CACHE)})


def two_phase_noise(
    *,
    epsilon: float,
    num_records: int,
    phases: list[tuple[int, int]],
    accountant: str,
) -> tuple[float, float]:
    """One noise multiplier for phases of (batch size, steps), and its spend."""
    delta = choose_delta(num_records, None)
    rates = [(sample_rate_for(num_records, batch), steps) for batch, steps in phases]

    def history(sigma: float) -> tuple[tuple[float, float, int], ...]:
        return tuple((sigma, rate, steps) for rate, steps in rates)

    sigma = smallest_noise(
        lambda s: composed_epsilon(history(s), delta, accountant), epsilon
    )
    spent = composed_epsilon(history(sigma), delta, accountant)
    if not spent <= epsilon:
        raise SystemExit(f"calibration overspent: {spent} > {epsilon}")
    return sigma, spent


def text_loader(
    settings: RunSettings,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    labels: list[int],
) -> DataLoader:
    """An evaluation loader over texts, in order."""
    return make_text_loader(
        tokenizer,
        texts,
        labels,
        max_length=settings.task.max_length,
        batch_size=64,
        shuffle=False,
        seed=0,
    )


def encoder_rounds(
    settings: RunSettings,
    *,
    head: nn.Module,
    clients: list[tuple[list[str], list[int]]],
    noise: list[float],
    rounds: int,
    label_names: tuple[str, ...],
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
) -> nn.Module:
    """FedAvg rounds of LoRA / full DP-SGD from `head`; the trained classifier."""
    model = build_classifier(settings.model, label_names=label_names, seed=seed)
    model.classifier.load_state_dict(head.state_dict())
    trainable = prepare_for_finetuning(model, settings.finetune)
    for round_number in range(rounds):
        started = time.perf_counter()
        global_state = trainable_state(trainable)
        total = {k: torch.zeros_like(v) for k, v in global_state.items()}
        count = 0
        for (texts, labels), sigma in zip(clients, noise, strict=True):
            local = copy.deepcopy(trainable)
            load_trainable_state(local, global_state)
            _client_update(
                settings,
                local,
                texts=texts,
                labels=labels,
                sigma=sigma,
                tokenizer=tokenizer,
                seed=seed + round_number,
            )
            for k, v in trainable_state(local).items():
                total[k] += len(labels) * v
            count += len(labels)
        load_trainable_state(trainable, {k: v / count for k, v in total.items()})
        print(
            f"  {settings.finetune.mode} round {round_number + 1}/{rounds}: "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return trainable


def _client_update(
    settings: RunSettings,
    local: nn.Module,
    *,
    texts: list[str],
    labels: list[int],
    sigma: float,
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
) -> None:
    """One client's local epochs of LoRA / full DP-SGD on `local`, in place."""
    privacy = settings.privacy
    assert privacy.max_grad_norm is not None and privacy.grad_sample_mode
    local.train()
    loader = make_text_loader(
        tokenizer,
        texts,
        labels,
        max_length=settings.task.max_length,
        batch_size=settings.finetune.batch_size,
        shuffle=True,
        seed=seed,
    )
    optimizer = build_optimizer(local.parameters(), settings.finetune)
    wrapped = private_training(
        model=local,
        optimizer=optimizer,
        loader=loader,
        noise_multiplier=sigma,
        max_grad_norm=privacy.max_grad_norm,
        grad_sample_mode=privacy.grad_sample_mode,
    )
    train_epochs(
        wrapped.model,
        wrapped.loader,
        wrapped.optimizer,
        logits_fn=text_logits(wrapped.model),
        epochs=settings.finetune.local_epochs,
        loss_fn=criterion_loss(wrapped.criterion),
    )
