"""The arms of `head_then_encoder.py`: head-only, then head and encoder, per seed.

`run_seed` trains every arm for one seed with the arguments
`head_then_encoder.py` parsed, and prints and appends each result to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from encoder_fedavg import (  # noqa: E402
    SeedData,
    encoder_rounds,
    encoder_settings,
    load_seed,
    text_loader,
    two_phase_noise,
)
from head_candidates import Candidate, rule_candidate, run_accountant  # noqa: E402
from head_features import initial_head, validation_accuracy  # noqa: E402
from head_fedavg import client_plans, head_rounds  # noqa: E402
from quiet_warnings import silence_known_warnings  # noqa: E402
from torch import nn  # noqa: E402

from fedmodel.config import RunSettings  # noqa: E402
from fedmodel.privacy.sampling import (  # noqa: E402
    poisson_steps_per_epoch,
)
from fedmodel.training.loops import (  # noqa: E402
    EvalResult,
    evaluate,
    feature_logits,
    text_logits,
)

silence_known_warnings()


@dataclass(frozen=True)
class Report:
    """Print one arm's result and append it to --out."""

    args: argparse.Namespace
    seed: int

    def __call__(self, arm: str, val: float, test: EvalResult, extra: dict) -> None:
        args = self.args
        line = {
            "task": args.task,
            "epsilon": args.epsilon,
            "seed": self.seed,
            "arm": arm,
            "val_accuracy": val,
            "test_accuracy": test.accuracy,
            "test_macro_f1": test.macro_f1,
            **extra,
        }
        with args.out.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        print(
            f"{args.task} eps {args.epsilon:g} seed {self.seed} {arm}: "
            f"val {val:.4f} test {test.accuracy:.4f} "
            f"(macro-F1 {test.macro_f1:.4f}) {extra}",
            flush=True,
        )


def run_seed(args: argparse.Namespace, seed: int) -> None:
    """Every arm for one seed, each printed and appended to --out as it ends."""
    rule = dataclasses.replace(
        rule_candidate(args.epsilon), init="warm", rounds=args.rounds
    )
    data = load_seed(args.task, seed)
    report = Report(args, seed)
    head_only(args, data, rule, seed=seed, report=report)
    for mode in args.modes:
        head_then_encoder(args, data, rule, mode=mode, seed=seed, report=report)


def head_only(
    args: argparse.Namespace,
    data: SeedData,
    rule: Candidate,
    *,
    seed: int,
    report: Report,
) -> None:
    """The start, then the head for all rounds: the plan a simulation makes."""
    started = time.perf_counter()
    cached = data.cached
    plans = client_plans(
        cached, rule, epsilon=args.epsilon, accountant=run_accountant()
    )
    module = nn.Sequential(nn.Dropout(0.1), initial_head(cached, "warm", seed))
    start_test = evaluate(module, data.test_features, logits_fn=feature_logits(module))
    report("start", validation_accuracy(cached, module), start_test, {})
    history = head_rounds(
        cached,
        module,
        rule,
        noise=[p.noise_multiplier for p in plans],
        rounds=rule.rounds,
        seed=seed,
    )
    report(
        "head",
        history[-1],
        evaluate(module, data.test_features, logits_fn=feature_logits(module)),
        {
            "sigma0": plans[0].noise_multiplier,
            "seconds": round(time.perf_counter() - started),
        },
    )


def two_phase_plans(
    args: argparse.Namespace, rule: Candidate, enc: RunSettings, sizes: list[int]
) -> tuple[list[float], list[float]]:
    """Each client's noise multiplier for both phases, and its spend."""
    head_first = args.rounds - args.encoder_rounds
    noise, spends = [], []
    for n in sizes:
        head_steps = (
            head_first * rule.epochs * poisson_steps_per_epoch(n, rule.batch_size)
        )
        encoder_steps = (
            args.encoder_rounds
            * enc.finetune.local_epochs
            * poisson_steps_per_epoch(n, enc.finetune.batch_size)
        )
        sigma, spent = two_phase_noise(
            epsilon=args.epsilon,
            num_records=n,
            phases=[
                (rule.batch_size, head_steps),
                (enc.finetune.batch_size, encoder_steps),
            ],
            accountant=run_accountant(),
        )
        noise.append(sigma)
        spends.append(spent)
    return noise, spends


def head_then_encoder(
    args: argparse.Namespace,
    data: SeedData,
    rule: Candidate,
    *,
    mode: str,
    seed: int,
    report: Report,
) -> None:
    """The head for the first rounds, then `mode` for --encoder-rounds, one plan."""
    started = time.perf_counter()
    head_first = args.rounds - args.encoder_rounds
    enc = encoder_settings(args.task, mode, seed=seed, epsilon=args.epsilon)
    noise, spends = two_phase_plans(
        args, rule, enc, [len(labels) for _, labels in data.clients]
    )
    module = nn.Sequential(nn.Dropout(0.1), initial_head(data.cached, "warm", seed))
    head_history = head_rounds(
        data.cached, module, rule, noise=noise, rounds=head_first, seed=seed
    )
    report(
        f"head ({head_first} rounds, before {mode})",
        head_history[-1],
        evaluate(module, data.test_features, logits_fn=feature_logits(module)),
        {"sigma0": noise[0]},
    )
    trained = encoder_rounds(
        enc,
        head=module[1],
        clients=data.clients,
        noise=noise,
        rounds=args.encoder_rounds,
        label_names=data.label_names,
        tokenizer=data.tokenizer,
        seed=seed,
    )
    val = evaluate(
        trained,
        text_loader(enc, data.tokenizer, *data.validation_texts),
        logits_fn=text_logits(trained),
    )
    test = evaluate(
        trained,
        text_loader(enc, data.tokenizer, *data.test_texts),
        logits_fn=text_logits(trained),
    )
    report(
        f"head+{mode}",
        val.accuracy,
        test,
        {
            "sigma0": noise[0],
            "max_epsilon": max(spends),
            "seconds": round(time.perf_counter() - started),
        },
    )
