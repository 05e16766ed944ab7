"""Wall time of one DP-SGD optimizer step against the same non-private step.

For each fine-tuning mode (conf/finetune/*.yaml) on the shipped MiniLM with real
Banking77 texts, one step (zero_grad, forward, backward, optimizer step; the
per-batch body of `fedmodel.training.loops.train_epochs`) is timed for:

- the non-private model and optimizer (`off`),
- the same model and optimizer wrapped by
  `fedmodel.privacy.engine.private_training` with each clipping method
  `privacy.grad_sample_mode` offers: `hooks`
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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedmodel.config.modes import (  # noqa: E402
    FINETUNE_MODE_NAMES,
    GRAD_SAMPLE_MODE_NAMES,
)

if TYPE_CHECKING:
    from step_variants import Variant

    from fedmodel.training.loops import Batch

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

GRAD_SAMPLE_MODES = GRAD_SAMPLE_MODE_NAMES


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=FINETUNE_MODE_NAMES,
        default=list(FINETUNE_MODE_NAMES),
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


def measure(
    variants: list[Variant], batches: list[Batch], *, warmup: int, repeats: int
) -> None:
    """Interleave one step of each variant per repeat, rotating who goes first."""
    from step_variants import short_error

    for repeat in range(warmup + repeats):
        batch = batches[repeat % len(batches)]
        working = [v for v in variants if v.step is not None and not v.error]
        shift = repeat % len(working) if working else 0
        for variant in working[shift:] + working[:shift]:
            assert variant.step is not None
            try:
                backward, update = variant.step(batch)
            except Exception as exc:  # noqa: BLE001 - a mode that fails is a result
                variant.step, variant.error = None, short_error(exc)
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
        "Every DP variant: fedmodel.privacy.engine.private_training with that "
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
    import opacus
    import torch
    import transformers
    from step_variants import (
        NOISE_MULTIPLIER,
        NON_PRIVATE,
        build_variant,
        build_workload,
        mode_settings,
    )

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
