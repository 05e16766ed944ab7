"""The draws of `warm_start_check.py`: server files, both starts, the rules' picks.

`run_scenario` draws server files of each size from a task's transfer split,
fits both starts on each and prints how each rule's kept head is judged.
"""

from __future__ import annotations

import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datasets  # noqa: E402
import head_features  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from fedmodel.config import RunSettings  # noqa: E402
from fedmodel.data.clients import load_client_data  # noqa: E402
from fedmodel.data.tasks import load_task  # noqa: E402
from fedmodel.model.classifier import PooledBertForSequenceClassification  # noqa: E402
from fedmodel.model.finetune import classification_head  # noqa: E402
from fedmodel.model.load import build_classifier  # noqa: E402
from fedmodel.training.embedding_cache import embed_split  # noqa: E402
from fedmodel.training.loops import evaluate, feature_logits  # noqa: E402
from fedmodel.training.model_selection import split_for_selection  # noqa: E402
from fedmodel.training.warm_start import (  # noqa: E402
    MIN_CHECK_RECORDS,
    fit_head,
    public_start,
)

SEED = 42
TEMPERATURES = torch.logspace(-2, 2, 17, base=2.0)  # 0.25 to 4


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float(torch.nn.functional.cross_entropy(logits, labels))


def _calibrated_loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return min(_loss(logits / t, labels) for t in TEMPERATURES)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=-1) == labels).float().mean())


def _brier(logits: torch.Tensor, labels: torch.Tensor) -> float:
    probabilities = logits.softmax(dim=-1)
    truth = torch.nn.functional.one_hot(labels, logits.shape[-1])
    return float(((probabilities - truth) ** 2).sum(dim=-1).mean())


# Whether to keep the warm start, from (start's, warm start's) held-out logits
# and the held-out labels.
Rule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], bool]
RULES: dict[str, Rule] = {
    "loss": lambda start, warm, y: _loss(warm, y) <= _loss(start, y),
    "calibrated": lambda start, warm, y: (
        _calibrated_loss(warm, y) <= _calibrated_loss(start, y)
    ),
    "accuracy": lambda start, warm, y: (
        (_accuracy(warm, y), -_loss(warm, y)) >= (_accuracy(start, y), -_loss(start, y))
    ),
    "brier": lambda start, warm, y: _brier(warm, y) <= _brier(start, y),
}


def judged_accuracy(
    classifier: PooledBertForSequenceClassification, judge: DataLoader
) -> float:
    head = classification_head(classifier)
    return evaluate(head, judge, logits_fn=feature_logits(head)).accuracy


def run_draw(
    model: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    names: tuple[str, ...],
    server: datasets.Dataset,
    judge: DataLoader,
    rules: list[str],
    folds: int,
) -> tuple[dict[str, float], dict[str, bool]]:
    """Judged accuracy of each head from one server file, and which kept the warm.

    The caller has loaded the untrained head. Columns: the label-name start,
    the warm start unchecked, the server's checked head, then each rule's
    (on the held-out records, then with `folds`, on every record: "/cv").
    """
    fit, held_out = split_for_selection(server)
    head = classification_head(model)
    start = {name: w.detach().clone() for name, w in head.state_dict().items()}
    features, truth = embed_split(settings, model=model, split=held_out)
    public_start(model, settings=settings, label_names=names, transfer=None)
    label_weight = model.classifier.weight.detach().clone()
    logits = {"label": head_logits(model, features)}
    judged = {"label": judged_accuracy(model, judge)}
    if folds:
        pooled = out_of_fold_logits(model, settings=settings, fit=fit, folds=folds)
    public_start(model, settings=settings, label_names=names, transfer=fit)
    logits["warm"] = head_logits(model, features)
    judged["warm"] = judged_accuracy(model, judge)
    head.load_state_dict(start)
    public_start(
        model, settings=settings, label_names=names, transfer=fit, held_out=held_out
    )
    judged["checked"] = judged_accuracy(model, judge)
    kept = {"checked": not torch.equal(model.classifier.weight.detach(), label_weight)}
    scored = {"": (logits["label"], logits["warm"], truth)}
    if folds:
        scored["/cv"] = (
            torch.cat([pooled[0], logits["label"]]),
            torch.cat([pooled[1], logits["warm"]]),
            torch.cat([pooled[2], truth]),
        )
    for rule in rules:
        for suffix, (start_logits, warm_logits, y) in scored.items():
            column = rule + suffix
            kept[column] = len(truth) >= MIN_CHECK_RECORDS and RULES[rule](
                start_logits, warm_logits, y
            )
            judged[column] = judged["warm" if kept[column] else "label"]
    return judged, kept


def out_of_fold_logits(
    model: PooledBertForSequenceClassification,
    *,
    settings: RunSettings,
    fit: datasets.Dataset,
    folds: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loaded head's logits on the fit records, a warm start's, and their labels.

    Each record's warm-start logits come from a head fitted, from the loaded
    head, on the other folds of `fit` (cross-validation).
    """
    head = classification_head(model)
    loaded = {name: w.detach().clone() for name, w in head.state_dict().items()}
    features, truth = embed_split(settings, model=model, split=fit)
    start = head_logits(model, features)
    warm = torch.empty_like(start)
    fold = torch.arange(len(truth)) % folds
    for k in range(folds):
        rest = fold != k
        fit_head(model, settings=settings, features=features[rest], labels=truth[rest])
        warm[~rest] = head_logits(model, features[~rest])
        head.load_state_dict(loaded)
    return start, warm, truth


def head_logits(
    model: PooledBertForSequenceClassification, features: torch.Tensor
) -> torch.Tensor:
    head = classification_head(model).eval()
    with torch.no_grad():
        return head(features)


def run_scenario(
    task: str, sizes: list[int], draws: int, rules: list[str], folds: int
) -> None:
    settings: RunSettings = head_features.scenario_settings(task, SEED)
    data = load_task(settings.task, seed=SEED)
    assert data.transfer is not None
    model = build_classifier(settings.model, label_names=data.label_names, seed=SEED)
    vals = [load_client_data(settings, c)[1] for c in range(settings.num_clients)]
    parts = [embed_split(settings, model=model, split=v) for v in vals]
    judge = DataLoader(
        TensorDataset(
            torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        ),
        batch_size=2048,
    )
    head = classification_head(model)
    untrained = {name: w.detach().clone() for name, w in head.state_dict().items()}
    for size in sizes:
        judged: dict[str, list[float]] = {}
        kept: dict[str, list[bool]] = {}
        rng = random.Random(size)
        for _ in range(1 if size == 0 else draws):
            indices = range(len(data.transfer))
            server = data.transfer.select(
                sorted(indices if size == 0 else rng.sample(indices, size))
            )
            head.load_state_dict(untrained)
            draw_judged, draw_kept = run_draw(
                model,
                settings=settings,
                names=data.label_names,
                server=server,
                judge=judge,
                rules=rules,
                folds=folds,
            )
            for column, accuracy in draw_judged.items():
                judged.setdefault(column, []).append(accuracy)
            for column, warm in draw_kept.items():
                kept.setdefault(column, []).append(warm)
        n = len(judged["label"])
        print(f"{task} size {size or len(data.transfer)} ({n} draws):", flush=True)
        for column, accuracies in judged.items():
            below = sum(a < s for a, s in zip(accuracies, judged["label"], strict=True))
            print(
                f"  {column:<10} {statistics.mean(accuracies):.4f}"
                + (
                    f"  warm start kept {sum(kept[column])}/{n}, "
                    f"below the label start {below}/{n}"
                    if column in kept
                    else ""
                ),
                flush=True,
            )
