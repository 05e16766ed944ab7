"""Does moving the encoder after the DP head pay at a generous budget?

Item 5 of the strict-budget work: a head-then-encoder schedule inside one
plan, against head-only at the same budget. Built on the pieces of
`hyperparameter_rule.py` (cached MiniLM features, the run's `private_training`,
`train_epochs`, FedAvg weighted by record count; 4 clients, Dirichlet 0.5) and,
for the encoder phase, the run's own LoRA / full fine-tuning (`finetune=lora`
or `finetune=full`: its batch, optimizer, learning rate, clip and clipping
method) on each client's texts.

- `head`: the rule's head settings for all `--rounds` rounds, one plan per
  client over those rounds (what `fedmodel simulate` runs).
- `head+lora`, `head+full`: the head for `--rounds - --encoder-rounds` rounds,
  then the encoder mode for `--encoder-rounds` rounds from that head. Each
  client has one noise multiplier for both phases, the smallest whose composed
  history [(sigma, q_head, T_head), (sigma, q_encoder, T_encoder)] spends at
  most the target with the run's accountant (`composed_epsilon`,
  `smallest_noise`). The script checks that spend before training.

All arms start from the same public start (label names, then the warm start
on the task's transfer split). The union of the clients' local validation
splits and the test split are both reported; neither chooses anything.

    .venv/bin/python benchmarks/head_then_encoder.py --modes lora full --seeds 42
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from hyperparameter_rule import (  # noqa: E402
    CACHE,
    client_plans,
    features,
    head_rounds,
    initial_head,
    rule_candidates,
    run_accountant,
    scenario_settings,
    validation_accuracy,
)
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from transformers import PreTrainedTokenizerBase  # noqa: E402

from fedmodel.config import RunSettings, compose_config, settings_from_dict  # noqa: E402
from fedmodel.data import load_client_data, load_task, make_text_loader  # noqa: E402
from fedmodel.model.finetune import (  # noqa: E402
    load_trainable_state,
    prepare_for_finetuning,
    trainable_state,
)
from fedmodel.model.load import build_classifier, load_tokenizer  # noqa: E402
from fedmodel.privacy import private_training  # noqa: E402
from fedmodel.privacy.accountants import composed_epsilon  # noqa: E402
from fedmodel.privacy.calibration import choose_delta  # noqa: E402
from fedmodel.privacy.noise_search import smallest_noise  # noqa: E402
from fedmodel.privacy.sampling import (  # noqa: E402
    poisson_steps_per_epoch,
    sample_rate_for,
)
from fedmodel.training.embedding_cache import embed_split  # noqa: E402
from fedmodel.training.loops import (  # noqa: E402
    EvalResult,
    build_optimizer,
    criterion_loss,
    evaluate,
    feature_logits,
    text_logits,
    train_epochs,
)

warnings.filterwarnings("ignore", message="Secure RNG turned off")
warnings.filterwarnings("ignore", message="Full backward hook is firing")
warnings.filterwarnings("ignore", message="Using a non-full backward hook")
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")


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
    privacy = settings.privacy
    assert privacy.max_grad_norm is not None and privacy.grad_sample_mode
    for round_number in range(rounds):
        started = time.perf_counter()
        global_state = trainable_state(trainable)
        total = {k: torch.zeros_like(v) for k, v in global_state.items()}
        count = 0
        for (texts, labels), sigma in zip(clients, noise, strict=True):
            local = copy.deepcopy(trainable)
            load_trainable_state(local, global_state)
            local.train()
            loader = make_text_loader(
                tokenizer,
                texts,
                labels,
                max_length=settings.task.max_length,
                batch_size=settings.finetune.batch_size,
                shuffle=True,
                seed=seed + round_number,
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


def run_seed(args: argparse.Namespace, seed: int) -> None:
    """Every arm for one seed, each printed and appended to --out as it ends."""
    accountant = run_accountant()
    rule = dataclasses.replace(
        rule_candidates(args.epsilon)[0], init="warm", rounds=args.rounds
    )
    head_rounds_first = args.rounds - args.encoder_rounds
    cached = features(args.task, seed)
    settings = scenario_settings(args.task, seed)
    data = load_task(settings.task, seed=seed)
    test_x, test_y = embed_split(
        settings,
        model=build_classifier(settings.model, label_names=data.label_names, seed=seed),
        split=data.test,
    )
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=2048)
    clients, val_texts, val_labels = [], [], []
    for client in range(settings.num_clients):
        train, val, _ = load_client_data(settings, client)
        clients.append((list(train["text"]), list(train["label"])))
        val_texts += list(val["text"])
        val_labels += list(val["label"])
    sizes = [len(labels) for _, labels in clients]
    tokenizer = load_tokenizer(settings.model)

    def report(arm: str, val: float, test: EvalResult, extra: dict) -> None:
        line = {
            "task": args.task,
            "epsilon": args.epsilon,
            "seed": seed,
            "arm": arm,
            "val_accuracy": val,
            "test_accuracy": test.accuracy,
            "test_macro_f1": test.macro_f1,
            **extra,
        }
        with args.out.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        print(
            f"{args.task} eps {args.epsilon:g} seed {seed} {arm}: "
            f"val {val:.4f} test {test.accuracy:.4f} "
            f"(macro-F1 {test.macro_f1:.4f}) {extra}",
            flush=True,
        )

    # Head only, all rounds, the plan a simulation makes.
    started = time.perf_counter()
    plans = client_plans(cached, rule, epsilon=args.epsilon, accountant=accountant)
    module = nn.Sequential(nn.Dropout(0.1), initial_head(cached, "warm", seed))
    start_test = evaluate(module, test_loader, logits_fn=feature_logits(module))
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
        evaluate(module, test_loader, logits_fn=feature_logits(module)),
        {
            "sigma0": plans[0].noise_multiplier,
            "seconds": round(time.perf_counter() - started),
        },
    )

    for mode in args.modes:
        started = time.perf_counter()
        enc = encoder_settings(args.task, mode, seed=seed, epsilon=args.epsilon)
        noise, spends = [], []
        for n in sizes:
            sigma, spent = two_phase_noise(
                epsilon=args.epsilon,
                num_records=n,
                phases=[
                    (
                        rule.batch_size,
                        head_rounds_first
                        * rule.epochs
                        * poisson_steps_per_epoch(n, rule.batch_size),
                    ),
                    (
                        enc.finetune.batch_size,
                        args.encoder_rounds
                        * enc.finetune.local_epochs
                        * poisson_steps_per_epoch(n, enc.finetune.batch_size),
                    ),
                ],
                accountant=accountant,
            )
            noise.append(sigma)
            spends.append(spent)
        module = nn.Sequential(nn.Dropout(0.1), initial_head(cached, "warm", seed))
        head_history = head_rounds(
            cached, module, rule, noise=noise, rounds=head_rounds_first, seed=seed
        )
        head_test = evaluate(module, test_loader, logits_fn=feature_logits(module))
        report(
            f"head ({head_rounds_first} rounds, before {mode})",
            head_history[-1],
            head_test,
            {"sigma0": noise[0]},
        )
        trained = encoder_rounds(
            enc,
            head=module[1],
            clients=clients,
            noise=noise,
            rounds=args.encoder_rounds,
            label_names=data.label_names,
            tokenizer=tokenizer,
            seed=seed,
        )
        val = evaluate(
            trained,
            text_loader(enc, tokenizer, val_texts, val_labels),
            logits_fn=text_logits(trained),
        )
        test = evaluate(
            trained,
            text_loader(
                enc, tokenizer, list(data.test["text"]), list(data.test["label"])
            ),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bank")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument(
        "--modes", nargs="+", choices=["lora", "full"], default=["lora"]
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--encoder-rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=CACHE / "head_then_encoder.jsonl")
    args = parser.parse_args()
    if not 1 <= args.encoder_rounds < args.rounds:
        parser.error("--encoder-rounds must be at least 1 and below --rounds")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        run_seed(args, seed)


if __name__ == "__main__":
    main()
