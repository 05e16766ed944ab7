"""Student vs teacher: accuracy kept and CPU inference speed-up, side by side.

Runs the default demo (`make demo`: bank, 4 clients, DP at epsilon 8, server
distillation into a 2-layer student), plus any Hydra overrides, or reads an
existing run folder with --run-dir. Then it times teacher and student again,
alternating them call by call on the same batches so that both see the same
machine load, and prints the ratios. Target: accuracy ratio >= 0.97 at a
speed-up >= 3x. Usage:

    .venv/bin/python benchmarks/distill.py [--run-dir DIR] [overrides...]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import yaml

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data import load_task
from fedmodel.federation.simulation import simulate
from fedmodel.run.console import setup_logging
from fedmodel.serve.export import ONNX_FILE
from fedmodel.serve.inference import OnnxClassifier, TextClassifier, TorchClassifier

BATCHES = {1: 200, 32: 40}


def alternating_latency(
    teacher: TextClassifier, student: TextClassifier, texts: list[str], batch: int
) -> tuple[float, float]:
    """Median ms per call of each model, measured alternately on the same texts."""
    timings: dict[str, list[float]] = {"teacher": [], "student": []}
    teacher.logits(texts[:batch])
    student.logits(texts[:batch])
    for i in range(BATCHES[batch]):
        start = (i * batch) % (len(texts) - batch + 1)
        chunk = texts[start : start + batch]
        for name, model in (("teacher", teacher), ("student", student)):
            began = time.perf_counter()
            model.logits(chunk)
            timings[name].append((time.perf_counter() - began) * 1000.0)
    return statistics.median(timings["teacher"]), statistics.median(timings["student"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stamp = time.strftime("%Y-%m-%d/%H-%M-%S")
    parser.add_argument("--run-dir", type=Path, help="reuse a finished run")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/bench-distill") / stamp
    )
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("flwr").setLevel(logging.WARNING)

    run_dir = args.run_dir
    if run_dir is None:
        run_dir = args.out
        simulate(compose_config(["distill=server", *args.overrides]), run_dir=run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    teacher, student = summary["teacher"], summary["student"]
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    settings = settings_from_dict(resolved)
    texts = list(load_task(settings.task, seed=settings.seed).test["text"])[:1280]

    print()
    print(f"run: {run_dir}")
    print("| model | layers | parameters | weights MB | test accuracy | macro-F1 |")
    print("|---|---|---|---|---|---|")
    for name, entry in (("teacher", teacher), ("student", student)):
        print(
            f"| {name} | {entry['num_layers']} | {entry['parameters'] / 1e6:.1f}M | "
            f"{entry['size_bytes'] / 1e6:.1f} | {entry['accuracy']:.4f} | "
            f"{entry['macro_f1']:.4f} |"
        )
    ratio = student["accuracy"] / teacher["accuracy"]
    print(f"\naccuracy ratio student/teacher: {ratio:.3f} (target >= 0.97)")
    print(f"distillation: {summary['distillation']}")

    print("\n| runtime | batch | teacher ms | student ms | speed-up |")
    print("|---|---|---|---|---|")
    runtimes = {
        "PyTorch": (
            TorchClassifier(run_dir / "model"),
            TorchClassifier(run_dir / "student"),
        ),
        "ONNX Runtime": (
            OnnxClassifier(run_dir / "model" / ONNX_FILE),
            OnnxClassifier(run_dir / "student" / ONNX_FILE),
        ),
    }
    for runtime, (teacher_model, student_model) in runtimes.items():
        for batch in BATCHES:
            t_ms, s_ms = alternating_latency(teacher_model, student_model, texts, batch)
            print(
                f"| {runtime} | {batch} | {t_ms:.1f} | {s_ms:.1f} | "
                f"{t_ms / s_ms:.2f}x |"
            )


if __name__ == "__main__":
    main()
