"""Cached encoder features of bank and hospital, for the head benchmarks.

`head_fedavg.py`, `hyperparameter_rule.py`, `round_selection.py`,
`head_then_encoder.py` (through `encoder_fedavg.load_seed`) and
`records_per_noise.py` train heads on these. Each
simulated client's training split is embedded once with the frozen encoder
(cached in the repository's `outputs/bench-rule/`, whichever folder a
benchmark is run from); validation is the union of the clients'
local validation splits, never the test split. A run trains on every record
(`task.val_fraction` 0); these benchmarks hold out 10% of each client's
records (`VAL_FRACTION`) to have something to score on, as every figure they
printed was measured. `initial_head` builds the
public starts a run uses: the label names, then the warm start on the server's
transfer split.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from head_candidates import CACHE  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from fedmodel.config import RunSettings, compose_config, settings_from_dict  # noqa: E402
from fedmodel.data.clients import load_client_data  # noqa: E402
from fedmodel.data.tasks import load_task  # noqa: E402
from fedmodel.data.tokenization import length_order  # noqa: E402
from fedmodel.model.label_init import init_head_from_label_names  # noqa: E402
from fedmodel.model.load import build_classifier  # noqa: E402
from fedmodel.training.embedding_cache import embed_split  # noqa: E402
from fedmodel.training.loops import evaluate, feature_logits, train_epochs  # noqa: E402

# The share of each client's records held out as its local validation split.
VAL_FRACTION = 0.1


def scenario_settings(task: str, seed: int) -> RunSettings:
    raw = compose_config(
        [
            f"task={task}",
            "num_clients=4",
            "partition=dirichlet",
            f"seed={seed}",
            f"task.val_fraction={VAL_FRACTION}",
        ]
    )
    return settings_from_dict({**raw, "run_dir": str(CACHE)})


def task_features(task: str) -> dict[str, Any]:
    """Pooled features of every training and transfer text of a task, once.

    The task's splits use `task.split_seed` (fixed), so every run seed shares
    them; only the partition over clients changes with the seed.
    """
    path = CACHE / f"texts-{task}.pt"
    if path.is_file():
        return torch.load(path)
    settings = scenario_settings(task, 42)
    data = load_task(settings.task, seed=42)
    model = build_classifier(settings.model, label_names=data.label_names, seed=42)
    x, _ = embed_split(settings, model=model, split=data.train)
    # embed_split returns length order; key the rows by text instead.
    texts = list(data.train["text"])
    by_text = {texts[i]: x[row] for row, i in enumerate(length_order(texts))}
    transfer = (
        embed_split(settings, model=model, split=data.transfer)
        if data.transfer is not None
        else None
    )
    init_head_from_label_names(
        model, settings=settings.model, label_names=data.label_names
    )
    cached = {
        "by_text": by_text,
        "transfer": transfer,
        "label_weight": model.classifier.weight.detach().clone(),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(cached, path)
    return cached


def features(task: str, seed: int) -> dict[str, Any]:
    """Client train features, pooled validation features, transfer, label init."""
    path = CACHE / f"features-{task}-{seed}.pt"
    if path.is_file():
        return torch.load(path)
    settings = scenario_settings(task, seed)
    shared = task_features(task)
    by_text = shared["by_text"]

    def rows(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
        texts, labels = split["text"], split["label"]
        return torch.stack([by_text[t] for t in texts]), torch.tensor(labels)

    clients, vals = [], []
    for client in range(settings.num_clients):
        train, val, _ = load_client_data(settings, client)
        clients.append(rows(train))
        vals.append(rows(val))
    cached = {
        "clients": clients,
        "val": (torch.cat([v[0] for v in vals]), torch.cat([v[1] for v in vals])),
        "transfer": shared["transfer"],
        "label_weight": shared["label_weight"],
    }
    torch.save(cached, path)
    return cached


def initial_head(cached: dict, init: str, seed: int) -> nn.Linear:
    weight = cached["label_weight"]
    torch.manual_seed(seed)
    head = nn.Linear(weight.shape[1], weight.shape[0])
    if init in ("label", "warm"):
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.zero_()
    if init == "warm" and cached["transfer"] is not None:
        x, y = cached["transfer"]
        loader = DataLoader(
            TensorDataset(x, y),
            batch_size=64,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        module = nn.Sequential(nn.Dropout(0.1), head)
        optimizer = torch.optim.SGD(module.parameters(), lr=2.0, momentum=0.9)
        train_epochs(
            module, loader, optimizer, logits_fn=feature_logits(module), epochs=30
        )
    return head


def validation_accuracy(cached: dict, module: nn.Module) -> float:
    """Accuracy on the union of the clients' local validation splits."""
    x_val, y_val = cached["val"]
    loader = DataLoader(TensorDataset(x_val, y_val), batch_size=2048)
    return evaluate(module, loader, logits_fn=feature_logits(module)).accuracy
