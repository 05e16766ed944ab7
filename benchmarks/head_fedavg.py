"""Head-mode FedAvg on cached features, with the pieces a run uses.

What `hyperparameter_rule.py`, `round_selection.py`, `head_then_encoder.py`
and `records_per_noise.py` share. On `head_features.py`' cached features of
bank and hospital it runs head-mode federated rounds in one process with the
run's own pieces (`plan_privacy`, `private_training` with the head's one-pass
clipping, `train_epochs`, FedAvg weighted by record count). Scores are on the
union of the clients' local validation splits, never the test split.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from head_candidates import Candidate  # noqa: E402
from head_features import initial_head, validation_accuracy  # noqa: E402
from quiet_warnings import silence_known_warnings  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from fedmodel.privacy.client_plan import PrivacyPlan, plan_privacy  # noqa: E402
from fedmodel.privacy.engine import private_training  # noqa: E402
from fedmodel.training.loops import (  # noqa: E402
    criterion_loss,
    feature_logits,
    train_epochs,
)

silence_known_warnings()


def run(
    cached: dict,
    cand: Candidate,
    *,
    epsilon: float | None,
    seed: int,
    accountant: str,
) -> dict:
    """FedAvg of DP-SGD heads; validation accuracy per round."""
    head = initial_head(cached, cand.init, seed)
    module = nn.Sequential(nn.Dropout(0.1), head)
    start = validation_accuracy(cached, module)
    plans = (
        client_plans(cached, cand, epsilon=epsilon, accountant=accountant)
        if epsilon is not None
        else [None] * len(cached["clients"])
    )
    history = head_rounds(
        cached,
        module,
        cand,
        noise=[plan.noise_multiplier if plan else None for plan in plans],
        rounds=cand.rounds,
        seed=seed,
    )
    sigma = plans[0].noise_multiplier if plans[0] is not None else 0.0
    return {
        "start": start,
        "final": history[-1],
        "best": max(history),
        "sigma0": sigma,
        "q0": plans[0].sample_rate if plans[0] is not None else 0.0,
    }


def client_plans(
    cached: dict, cand: Candidate, *, epsilon: float, accountant: str
) -> list[PrivacyPlan]:
    """Each client's plan for `cand`'s rounds, as a simulation makes it."""
    return [
        plan_privacy(
            target_epsilon=epsilon,
            delta=None,
            num_records=len(y),
            batch_size=cand.batch_size,
            local_epochs=cand.epochs,
            planned_rounds=cand.rounds,
            accountant=accountant,
        )
        for _, y in cached["clients"]
    ]


def head_rounds(
    cached: dict,
    module: nn.Sequential,
    cand: Candidate,
    *,
    noise: Sequence[float | None],
    rounds: int,
    seed: int,
) -> list[float]:
    """`rounds` FedAvg rounds of (dropout, head) in `module`, trained in place.

    Client i trains with DP-SGD at noise multiplier `noise[i]` (None: without
    DP). Returns the validation accuracy after each round.
    """
    history = []
    head = module[1]
    assert isinstance(head, nn.Linear)
    for round_number in range(rounds):
        global_state = {k: v.clone() for k, v in module.state_dict().items()}
        total = {k: torch.zeros_like(v) for k, v in global_state.items()}
        count = 0
        for (x, y), sigma in zip(cached["clients"], noise, strict=True):
            local = nn.Sequential(
                nn.Dropout(0.1), nn.Linear(x.shape[1], head.out_features)
            )
            local.load_state_dict(global_state)
            local_update(
                local, x, y, cand, sigma=sigma, shuffle_seed=seed + round_number
            )
            for k, v in local.state_dict().items():
                total[k] += len(y) * v
            count += len(y)
        module.load_state_dict({k: v / count for k, v in total.items()})
        history.append(validation_accuracy(cached, module))
    return history


def local_update(
    local: nn.Sequential,
    x: torch.Tensor,
    y: torch.Tensor,
    cand: Candidate,
    *,
    sigma: float | None,
    shuffle_seed: int,
) -> None:
    """One client's local epochs, in place: DP-SGD, or plain SGD if `sigma` is None."""
    local[1].bias.requires_grad_(not cand.hold_bias)
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=cand.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(shuffle_seed),
    )
    optimizer: torch.optim.Optimizer = torch.optim.SGD(
        [p for p in local.parameters() if p.requires_grad],
        lr=cand.learning_rate,
        momentum=cand.momentum,
    )
    trained: nn.Module = local
    loss_fn = None
    if sigma is not None:
        # Onepass clipping, as the rule's head runs: the same clipped, noised
        # update as hooks (tests/unit/test_ghost_clipping.py).
        wrapped = private_training(
            model=local,
            optimizer=optimizer,
            loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=cand.clip,
            grad_sample_mode="onepass",
        )
        trained, optimizer, loader = wrapped.model, wrapped.optimizer, wrapped.loader
        loss_fn = criterion_loss(wrapped.criterion)
    train_epochs(
        trained,
        loader,
        optimizer,
        logits_fn=feature_logits(trained),
        epochs=cand.epochs,
        loss_fn=loss_fn,
    )
