"""Does checking the warm start against the label-name start keep the better head?

The server fits the warm start on 80% of its labelled records and keeps it
only if its loss on the other 20% is not above the label-name start's
(`checked_warm_start` in `fedmodel/training/warm_start.py`). This draws random
server files of a few sizes from bank's and hospital's transfer splits, runs
the server's own code on each (`public_start` with and without the held-out
part), and judges the heads on records no choice saw: the union of the
clients' local validation splits (10% of each client's records, as in
`head_features.py`), never the test split. Usage:

    .venv/bin/python benchmarks/warm_start_check.py [--scenarios bank hospital]
        [--sizes 10 20 40 80 0] [--draws 10]

Size 0 is the whole transfer split. Per size it prints the mean judged
accuracy of the label-name start, of the warm start taken unchecked, and of
the head the check keeps, with how often the check kept the warm start and
how often the kept head was below the label-name start on the judged records.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import head_features  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from fedmodel.config import RunSettings  # noqa: E402
from fedmodel.data import load_client_data, load_task  # noqa: E402
from fedmodel.model.classifier import PooledBertForSequenceClassification  # noqa: E402
from fedmodel.model.finetune import classification_head  # noqa: E402
from fedmodel.model.load import build_classifier  # noqa: E402
from fedmodel.training.embedding_cache import embed_split  # noqa: E402
from fedmodel.training.loops import evaluate, feature_logits  # noqa: E402
from fedmodel.training.model_selection import split_for_selection  # noqa: E402
from fedmodel.training.warm_start import public_start  # noqa: E402

SEED = 42


def judged_accuracy(
    classifier: PooledBertForSequenceClassification, judge: DataLoader
) -> float:
    head = classification_head(classifier)
    return evaluate(head, judge, logits_fn=feature_logits(head)).accuracy


def run_scenario(task: str, sizes: list[int], draws: int) -> None:
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
    start = {name: w.detach().clone() for name, w in head.state_dict().items()}
    labels = data.label_names
    for size in sizes:
        rows: dict[str, list[float]] = {"label": [], "warm": [], "checked": []}
        kept_warm = below = 0
        rng = random.Random(size)
        for _ in range(1 if size == 0 else draws):
            indices = range(len(data.transfer))
            server = data.transfer.select(
                sorted(indices if size == 0 else rng.sample(indices, size))
            )
            fit, held_out = split_for_selection(server)
            head.load_state_dict(start)
            public_start(model, settings=settings, label_names=labels, transfer=None)
            rows["label"].append(judged_accuracy(model, judge))
            label_weight = model.classifier.weight.detach().clone()
            public_start(model, settings=settings, label_names=labels, transfer=fit)
            rows["warm"].append(judged_accuracy(model, judge))
            head.load_state_dict(start)
            public_start(
                model,
                settings=settings,
                label_names=labels,
                transfer=fit,
                held_out=held_out,
            )
            checked = judged_accuracy(model, judge)
            rows["checked"].append(checked)
            kept_warm += not torch.equal(model.classifier.weight.detach(), label_weight)
            below += checked < rows["label"][-1]
        n = len(rows["label"])
        print(
            f"{task} size {size or len(data.transfer)} ({n} draws): "
            + ", ".join(f"{k} {statistics.mean(v):.4f}" for k, v in rows.items())
            + f"; warm start kept {kept_warm}/{n}, below the label start {below}/{n}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["bank", "hospital"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 40, 80, 0])
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for task in args.scenarios:
        run_scenario(task, args.sizes, args.draws)


if __name__ == "__main__":
    main()
