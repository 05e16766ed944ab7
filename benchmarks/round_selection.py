"""Which round should the server keep? Policies judged off the choosing split.

`keep_best` scores the start and each round's model on a split the server
holds (a fixed 20% of its transfer split; the warm start fits the other 80%).
This compares four ways of choosing with that split, judged on records it
never saw: the union of the clients' local validation splits (never the test
split). Head-mode FedAvg with the run's pieces, as `head_fedavg.py` runs it
(cached MiniLM features, the budget rule, PRV noise, 4 clients, Dirichlet 0.5,
10 rounds, warm start, or with `--start label` the label-name start alone, as
a files task whose small `task.validation_file` gives no warm start):

- best of all: the highest-scoring (accuracy, then loss) of the start and the
  10 rounds (ties keep the earlier; fedmodel's rule before this benchmark);
- last round: no selection;
- start by accuracy: the last round, unless the start scored a higher
  accuracy (then loss);
- start by loss: the last round, unless the start had a lower mean
  cross-entropy (the rule `keep_best` follows now).

Besides the full split (bank 200 records, hospital 177), it draws smaller
random subsets of it (`--subsample`), as a files task's small
`task.validation_file` would give. Usage:

    .venv/bin/python benchmarks/round_selection.py [--scenarios bank hospital]
        [--epsilons 1 3 8] [--seeds 42 7 1 2] [--subsample 63] [--draws 200]
        [--start warm]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from head_candidates import rule_candidate, run_accountant  # noqa: E402

if TYPE_CHECKING:
    import torch

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

ROUNDS = 10


@dataclass
class Trace:
    """Per candidate (start, then each round): choosing-split rows, judge score."""

    correct: list[list[float]]
    loss: list[list[float]]
    judged: list[float]


Policy = Callable[[list[tuple[float, float]]], int]


def best_of_all(scores: list[tuple[float, float]]) -> int:
    """The highest (accuracy, -loss); ties keep the earlier."""
    best = 0
    for index, score in enumerate(scores):
        if score > scores[best]:
            best = index
    return best


def last_round(scores: list[tuple[float, float]]) -> int:
    """No selection."""
    return len(scores) - 1


def start_by_accuracy(scores: list[tuple[float, float]]) -> int:
    """The last round, unless the start scored a higher (accuracy, -loss)."""
    return 0 if scores[0] > scores[-1] else len(scores) - 1


def start_by_loss(scores: list[tuple[float, float]]) -> int:
    """The last round, unless the start's loss was lower (`keep_best`)."""
    return 0 if scores[0][1] > scores[-1][1] else len(scores) - 1


POLICIES: dict[str, Policy] = {
    "best of all": best_of_all,
    "last round": last_round,
    "start by accuracy": start_by_accuracy,
    "start by loss": start_by_loss,
}


def trace(
    cached: dict,
    selection: tuple[torch.Tensor, torch.Tensor],
    *,
    epsilon: float,
    seed: int,
    start: str,
) -> Trace:
    """The start, then ROUNDS rounds; every candidate scored both ways."""
    import head_features
    import head_fedavg as fedavg
    import torch
    from torch import nn

    cand = dataclasses.replace(rule_candidate(epsilon), init=start)
    assert cand.rounds == ROUNDS
    plans = fedavg.client_plans(
        cached, cand, epsilon=epsilon, accountant=run_accountant()
    )
    module = nn.Sequential(
        nn.Dropout(0.1), head_features.initial_head(cached, start, seed)
    )
    out = Trace([], [], [])
    x, y = selection
    for round_number in range(ROUNDS + 1):
        if round_number:
            fedavg.head_rounds(
                cached,
                module,
                cand,
                noise=[plan.noise_multiplier for plan in plans],
                rounds=1,
                seed=seed + 1000 * round_number,
            )
        module.eval()
        with torch.no_grad():
            logits = module(x)
        module.train()
        out.correct.append((logits.argmax(dim=1) == y).float().tolist())
        losses = nn.functional.cross_entropy(logits, y, reduction="none")
        out.loss.append(losses.tolist())
        out.judged.append(head_features.validation_accuracy(cached, module))
    return out


def pick(run: Trace, policy: Policy, rows: list[int]) -> int:
    """The candidate (0: the start) `policy` picks by the choosing split's `rows`."""
    scores = [
        (
            statistics.fmean(correct[i] for i in rows),
            -statistics.fmean(loss[i] for i in rows),
        )
        for correct, loss in zip(run.correct, run.loss, strict=True)
    ]
    return policy(scores)


def print_table(
    runs: dict[float, list[Trace]], *, subsample: list[int], draws: int
) -> None:
    """Each policy's judged accuracy, and how often its pick is below the start.

    On the whole choosing split, and on `draws` random draws of `subsample`
    of its rows per run.
    """
    draw = random.Random(0)
    names = list(POLICIES)
    print(
        "\n| epsilon | choosing split | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{name}: below the start" for name in names)
        + " | start by loss: kept the start |"
    )
    print("|---" * (2 * len(names) + 3) + "|")
    for epsilon, traces in runs.items():
        for size in [None, *subsample]:
            picked: dict[str, list[float]] = {name: [] for name in names}
            below = dict.fromkeys(names, 0)
            fell_back = 0
            for run in traces:
                full = list(range(len(run.correct[0])))
                for _ in range(1 if size is None else draws):
                    rows = full if size is None else draw.sample(full, size)
                    for name, policy in POLICIES.items():
                        index = pick(run, policy, rows)
                        picked[name].append(run.judged[index])
                        below[name] += run.judged[index] < run.judged[0]
                        fell_back += policy is start_by_loss and index == 0
            total = len(picked[names[0]])
            means = " | ".join(f"{statistics.fmean(picked[n]):.4f}" for n in names)
            shares = " | ".join(f"{below[n] / total:.2f}" for n in names)
            print(
                f"| {epsilon:g} | {'all' if size is None else size} | {means} "
                f"| {shares} | {fell_back / total:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["bank", "hospital"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 3.0, 8.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7, 1, 2])
    parser.add_argument("--subsample", nargs="*", type=int, default=[63])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--start", choices=["warm", "label"], default="warm")
    args = parser.parse_args()
    import head_features
    import torch

    from fedmodel.training.model_selection import SELECTION_SHARE

    torch.set_num_threads(2)
    runs: dict[float, list[Trace]] = {epsilon: [] for epsilon in args.epsilons}
    for task in args.scenarios:
        for seed in args.seeds:
            cached = dict(head_features.features(task, seed))
            x, y = cached["transfer"]
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
            held = round(SELECTION_SHARE * len(y))
            selection = (x[order[:held]], y[order[:held]])
            cached["transfer"] = (x[order[held:]], y[order[held:]])
            for epsilon in args.epsilons:
                run = trace(
                    cached, selection, epsilon=epsilon, seed=seed, start=args.start
                )
                runs[epsilon].append(run)
                judged = " ".join(f"{a:.4f}" for a in run.judged)
                print(
                    f"{task} seed {seed} eps {epsilon:g}: judged {judged}", flush=True
                )
    print_table(runs, subsample=args.subsample, draws=args.draws)
    print(
        f"\n(judged: accuracy on the clients' validation splits, mean over "
        f"{len(args.scenarios)} tasks x {len(args.seeds)} seeds; a subsample "
        f"row takes {args.draws} random draws of the choosing split per run)"
    )


if __name__ == "__main__":
    main()
