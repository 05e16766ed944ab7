"""CPU speed of candidate student shapes against the teacher, side by side.

Speed does not depend on training, so this builds each student shape from the
shipped MiniLM (a 77-label head, as for Banking77), exports it (float and int8
ONNX) and times every model in turn on the same Banking77 test batches,
tokenizing included, at batch 1 and 32. It prints milliseconds per call and
the speed-up over the teacher's faster runtime (PyTorch or ONNX Runtime).
Accuracy needs a distilled student: see benchmarks/distill.py. Usage:

    .venv/bin/python benchmarks/student_shapes.py [--out DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.config import compose_config, settings_from_dict

if TYPE_CHECKING:
    from fedmodel.serve.inference import TextClassifier

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

# name -> (layers, share of the teacher's feed-forward units, max_length)
SHAPES: dict[str, tuple[int, float, int]] = {
    "2 layers": (2, 1.0, 64),
    "1 layer": (1, 1.0, 64),
    "2 layers, half the units": (2, 0.5, 64),
    "2 layers, 32 tokens": (2, 1.0, 32),
    "2 layers, half the units, 32 tokens": (2, 0.5, 32),
}
BATCH_SIZES = (1, 32)


def main() -> None:
    """Export the teacher and each shape, then time them all in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-shapes"))
    parser.add_argument("--repeats", type=int, default=60, help="calls at batch 1")
    args = parser.parse_args()
    from fedmodel.data.tasks import load_task
    from fedmodel.model.load import build_classifier, load_tokenizer
    from fedmodel.model.student import build_student
    from fedmodel.serve.export import export_classifier
    from fedmodel.serve.inference import alternating_latency_ms, open_runtime

    settings = settings_from_dict({**compose_config([]), "run_dir": ""})
    texts = list(load_task(settings.task, seed=settings.seed).test["text"])[:1280]
    tokenizer = load_tokenizer(settings.model)
    labels = tuple(f"label{i}" for i in range(77))
    teacher = build_classifier(settings.model, label_names=labels, seed=0).eval()
    export_classifier(teacher, tokenizer, args.out / "teacher", max_length=64)
    models: dict[str, TextClassifier] = {
        "teacher PyTorch": open_runtime(args.out / "teacher", "torch"),
        "teacher ONNX": open_runtime(args.out / "teacher", "onnx"),
    }
    for index, (name, (layers, share, length)) in enumerate(SHAPES.items()):
        student = build_student(
            teacher,
            dataclasses.replace(
                settings.distill.student,
                num_layers=layers,
                layers=None,
                feed_forward_share=share,
            ),
        )
        folder = export_classifier(
            student,
            tokenizer,
            args.out / f"shape{index}",
            max_length=length,
            quantize=True,
        )
        models[f"{name} ONNX"] = open_runtime(folder, "onnx")
        models[f"{name} int8"] = open_runtime(folder, "onnx_int8")
    for batch in BATCH_SIZES:
        repeats = max(args.repeats // batch, 10)
        ms = alternating_latency_ms(models, texts, batch_size=batch, repeats=repeats)
        fastest = min(ms["teacher PyTorch"], ms["teacher ONNX"])
        print(f"\nbatch {batch} ({repeats} calls each, in turn)")
        print("| model | ms per call | speed-up |\n|---|---|---|")
        for name, value in ms.items():
            print(f"| {name} | {value:.2f} | {fastest / value:.2f}x |")


if __name__ == "__main__":
    main()
