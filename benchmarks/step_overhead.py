"""Wall time of one DP-SGD optimizer step against the same non-private step.

For each fine-tuning mode (conf/finetune/*.yaml) on the shipped MiniLM with real
Banking77 texts, one step (zero_grad, forward, backward, optimizer step; the
per-batch body of `fedmodel.training.loops.train_epochs`) is timed for:

- the non-private model and optimizer (`off`),
- the same model and optimizer wrapped by `fedmodel.privacy.private_training`
  with each clipping method `privacy.grad_sample_mode` offers: `hooks`
  (per-example gradients), `ghost` (Opacus' ghost clipping, which needs the
  wrapped loss `private_training` returns) and `onepass` (fedmodel's
  clipping from one backward pass to each layer's output).

All variants get the same fixed batches (Poisson sampling is bypassed: only the
per-example clipping and the noise differ). Each DP variant is timed against
its own non-private twin: after warm-up the two take turns (one step each per
repeat, alternating which goes first), so load from other jobs hits both alike
and one variant's memory traffic (hooks' per-example gradients) does not slow
another's. The tables give medians over the repeats and the median of the
per-repeat DP/non-private ratios. Timing figures are printed,
never asserted.

Torch runs on one thread by default, as a simulated client does: with
`federation.cpus_per_client=1` Ray sets OMP_NUM_THREADS=1 in the client's
worker. On a small machine shared with other jobs, two threads also make every
small parallel op wait for a descheduled thread, which swamps the head mode's
sub-millisecond steps; `--threads` changes it.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/step_overhead.py
    .venv/bin/python benchmarks/step_overhead.py --modes lora --batch-size 32
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import opacus  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402
from torch.optim import Optimizer  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from fedmodel.config import RunSettings, compose_config, settings_from_dict  # noqa: E402
from fedmodel.config.modes import GRAD_SAMPLE_MODE_NAMES  # noqa: E402
from fedmodel.data import load_task, make_text_loader  # noqa: E402
from fedmodel.model.finetune import (  # noqa: E402
    FINETUNE_MODES,
    classification_head,
    prepare_for_finetuning,
)
from fedmodel.model.load import build_classifier, load_tokenizer  # noqa: E402
from fedmodel.privacy import Criterion, private_training  # noqa: E402
from fedmodel.training.embedding_cache import embed_split  # noqa: E402
from fedmodel.training.loops import (  # noqa: E402
    Batch,
    LogitsFn,
    build_optimizer,
    feature_logits,
    text_logits,
)

# Opacus warns once per engine that secure RNG is off; that is how runs use it.
warnings.filterwarnings("ignore", message="Secure RNG turned off")
warnings.filterwarnings("ignore", message="Full backward hook is firing")
warnings.filterwarnings("ignore", message="Using a non-full backward hook")
# PEFT asks transformers a deprecated question when it wraps the model.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")

NON_PRIVATE = "off"
GRAD_SAMPLE_MODES = GRAD_SAMPLE_MODE_NAMES
NOISE_MULTIPLIER = 1.0  # its value does not change the cost of drawing noise


@dataclass
class Variant:
    """One way of taking a training step, and its timings."""

    name: str
    step: Callable[[Batch], tuple[float, float]] | None
    error: str = ""
    total_ms: list[float] = field(default_factory=list)
    backward_ms: list[float] = field(default_factory=list)
    update_ms: list[float] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes", nargs="+", choices=FINETUNE_MODES, default=list(FINETUNE_MODES)
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="examples per step for every mode (default: each mode's configured "
        "finetune.batch_size)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed steps each")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps each")
    parser.add_argument(
        "--batches", type=int, default=3, help="distinct fixed batches, cycled"
    )
    parser.add_argument(
        "--grad-sample-modes",
        nargs="+",
        choices=GRAD_SAMPLE_MODES,
        default=list(GRAD_SAMPLE_MODES),
        help="Opacus modes to time besides the non-private step",
    )
    args = parser.parse_args(argv)
    for name in ("repeats", "batches", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def mode_settings(mode: str, *, num_records: int) -> RunSettings:
    """Run settings of the default config with one fine-tuning mode."""
    raw = compose_config(
        [
            "model=minilm",
            "task=bank",
            f"finetune={mode}",
            f"task.max_train_examples={num_records}",
        ]
    )
    return settings_from_dict(raw)


@dataclass(frozen=True)
class Workload:
    """What one mode trains on: a loader for Opacus and fixed batches to time."""

    build_module: Callable[[], nn.Module]
    logits_of: Callable[[nn.Module], LogitsFn]
    loader: DataLoader
    batches: list[Batch]


def build_workload(
    settings: RunSettings, *, batch_size: int, num_batches: int
) -> Workload:
    """Fixed batches of real records and a fresh trainable module per call."""
    data = load_task(settings.task, seed=settings.seed)
    label_names = data.label_names
    split = data.train
    if len(split) < batch_size * num_batches:
        raise SystemExit(
            f"--batch-size {batch_size} x --batches {num_batches} needs more than "
            f"the {len(split)} Banking77 training records there are"
        )

    def fresh_model() -> nn.Module:
        model = build_classifier(
            settings.model, label_names=label_names, seed=settings.seed
        )
        return prepare_for_finetuning(model, settings.finetune)

    if settings.finetune.mode == "head":
        # As in a client's round: the frozen encoder embeds the records once and
        # only dropout + the classification layer train, on the features.
        encoder = build_classifier(
            settings.model, label_names=label_names, seed=settings.seed
        )
        features, labels = embed_split(settings, model=encoder, split=split)
        del encoder
        generator = torch.Generator().manual_seed(settings.seed)
        order = torch.randperm(len(labels), generator=generator)
        features, labels = features[order], labels[order]
        loader: DataLoader = DataLoader(
            TensorDataset(features, labels), batch_size=batch_size
        )
        batches: list[Batch] = [
            (features[i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, batch_size * num_batches, batch_size)
        ]

        def fresh_head() -> nn.Module:
            model = build_classifier(
                settings.model, label_names=label_names, seed=settings.seed
            )
            prepare_for_finetuning(model, settings.finetune)
            return classification_head(model)

        return Workload(fresh_head, feature_logits, loader, batches)

    loader = make_text_loader(
        load_tokenizer(settings.model),
        list(split["text"]),
        list(split["label"]),
        max_length=settings.task.max_length,
        batch_size=batch_size,
        shuffle=False,
        seed=settings.seed,
    )
    batches = [batch for _, batch in zip(range(num_batches), loader, strict=False)]
    return Workload(fresh_model, text_logits, loader, batches)


def timed_step(
    model: nn.Module,
    optimizer: Optimizer,
    *,
    logits_fn: LogitsFn,
    loss_fn: Criterion,
) -> Callable[[Batch], tuple[float, float]]:
    """One optimizer step on a batch, returning (forward+backward, update) seconds."""

    def run(batch: Batch) -> tuple[float, float]:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits, labels = logits_fn(batch)
        loss = loss_fn(logits, labels)
        loss.backward()
        middle = time.perf_counter()
        optimizer.step()
        return middle - start, time.perf_counter() - middle

    return run


def build_variant(name: str, workload: Workload, settings: RunSettings) -> Variant:
    """A non-private or DP step over a freshly built module, or why none works."""
    module = workload.build_module()
    module.train()
    optimizer = build_optimizer(module.parameters(), settings.finetune)
    assert settings.privacy.max_grad_norm is not None
    clip = settings.privacy.max_grad_norm
    try:
        if name == NON_PRIVATE:
            step = timed_step(
                module,
                optimizer,
                logits_fn=workload.logits_of(module),
                loss_fn=nn.functional.cross_entropy,
            )
        else:
            wrapped = private_training(
                model=module,
                optimizer=optimizer,
                loader=workload.loader,
                noise_multiplier=NOISE_MULTIPLIER,
                max_grad_norm=clip,
                grad_sample_mode=name,
            )
            step = timed_step(
                wrapped.model,
                wrapped.optimizer,
                logits_fn=workload.logits_of(wrapped.model),
                loss_fn=wrapped.criterion,
            )
    except Exception as exc:  # noqa: BLE001 - a mode that fails is a result
        return Variant(name, None, error=_short(exc))
    return Variant(name, step)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:110]}"


def measure(
    variants: list[Variant], batches: list[Batch], *, warmup: int, repeats: int
) -> None:
    """Interleave one step of each variant per repeat, rotating who goes first."""
    for repeat in range(warmup + repeats):
        batch = batches[repeat % len(batches)]
        working = [v for v in variants if v.step is not None and not v.error]
        shift = repeat % len(working) if working else 0
        for variant in working[shift:] + working[:shift]:
            assert variant.step is not None
            try:
                backward, update = variant.step(batch)
            except Exception as exc:  # noqa: BLE001 - a mode that fails is a result
                variant.step, variant.error = None, _short(exc)
                continue
            if repeat >= warmup:
                variant.backward_ms.append(backward * 1e3)
                variant.update_ms.append(update * 1e3)
                variant.total_ms.append((backward + update) * 1e3)


def paired_ratios(variant: Variant, baseline: Variant) -> list[float]:
    """DP/non-private per repeat: neighbours in time share the machine's load."""
    return [
        dp / off for dp, off in zip(variant.total_ms, baseline.total_ms, strict=True)
    ]


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def print_tables(rows: list[tuple[str, int, Variant, Variant]]) -> None:
    print()
    print(
        "| mode | batch | DP grad_sample | non-private ms | DP ms | DP/non-private "
        "| per-repeat ratio, median [IQR] |"
    )
    print("|---|---|---|---|---|---|---|")
    for mode, batch, baseline, variant in rows:
        if variant.error or baseline.error:
            print(
                f"| {mode} | {batch} | {variant.name} | - | - | - "
                f"| failed: {variant.error or baseline.error} |"
            )
            continue
        off = statistics.median(baseline.total_ms)
        dp = statistics.median(variant.total_ms)
        ratios = paired_ratios(variant, baseline)
        low, high = quartiles(ratios)
        print(
            f"| {mode} | {batch} | {variant.name} | {off:.1f} | {dp:.1f} "
            f"| {dp / off:.2f}x | {statistics.median(ratios):.2f}x "
            f"[{low:.2f}-{high:.2f}] |"
        )
    print()
    print(
        "Every DP variant: fedmodel.privacy.private_training with that "
        "privacy.grad_sample_mode."
    )
    print()
    print("Where the time goes (medians, ms): forward+backward, then optimizer step")
    print("(for DP: per-example clipping, noise, the optimizer's own update).")
    print()
    print("| mode | batch | variant | forward+backward ms | optimizer step ms |")
    print("|---|---|---|---|---|")
    for mode, batch, baseline, variant in rows:
        for item, name in (
            (baseline, f"{baseline.name} (twin of {variant.name})"),
            (variant, variant.name),
        ):
            if item.error or not item.total_ms:
                continue
            print(
                f"| {mode} | {batch} | {name} "
                f"| {statistics.median(item.backward_ms):.1f} "
                f"| {statistics.median(item.update_ms):.1f} |"
            )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, opacus {opacus.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"{args.warmup} warm-up + {args.repeats} timed steps per variant, "
        f"each DP variant interleaved with its own non-private twin, over "
        f"{args.batches} fixed batches; noise multiplier "
        f"{NOISE_MULTIPLIER}"
    )
    rows: list[tuple[str, int, Variant, Variant]] = []
    for mode in args.modes:
        configured = mode_settings(mode, num_records=1)
        batch_size = args.batch_size or configured.finetune.batch_size
        settings = mode_settings(mode, num_records=batch_size * args.batches)
        started = time.perf_counter()
        workload = build_workload(
            settings, batch_size=batch_size, num_batches=args.batches
        )
        for name in args.grad_sample_modes:
            pair = [
                build_variant(NON_PRIVATE, workload, settings),
                build_variant(name, workload, settings),
            ]
            measure(pair, workload.batches, warmup=args.warmup, repeats=args.repeats)
            for variant in pair:
                variant.step = None  # frees the model and its per-example gradients
            rows.append((mode, batch_size, pair[0], pair[1]))
        seconds = time.perf_counter() - started
        lengths = [
            tuple(b["input_ids"].shape) for b in workload.batches if isinstance(b, dict)
        ]
        shapes = f", token batches {lengths}" if lengths else ", pooled features"
        print(
            f"{mode}: optimizer {settings.finetune.optimizer}, "
            f"batch {batch_size}{shapes}; {seconds:.0f} s"
        )
    print_tables(rows)


if __name__ == "__main__":
    main()
