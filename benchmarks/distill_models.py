"""The heavy half of `distill.py`: distil a student, score it, time the models.

`distill.py` checks its arguments, then imports this module (torch,
transformers, ONNX Runtime) before it sets up logging, which quiets the
loggers those libraries set up as they are imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data.clients import load_client_data
from fedmodel.data.tasks import load_task
from fedmodel.distill.finish import finish_models, server_distill_texts
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.run.layout import RESOLVED_CONFIG, STUDENT_DIR, SUMMARY_FILE, TEACHER_DIR
from fedmodel.serve.benchmark import predicted_labels
from fedmodel.serve.exported_folder import load_tokenizer_of, read_exported_folder
from fedmodel.serve.inference import alternating_latency_ms, open_runtime

BATCHES = {1: 100, 32: 20}
MODELS = {
    "teacher PyTorch": (TEACHER_DIR, "torch"),
    "teacher ONNX": (TEACHER_DIR, "onnx"),
    "student ONNX": (STUDENT_DIR, "onnx"),
    "student int8 ONNX": (STUDENT_DIR, "onnx_int8"),
}


def with_packaged_distill(run: Path) -> dict[str, Any]:
    """`run`'s resolved config with today's packaged distill settings.

    The student follows today's settings (server distillation where the run
    had none), not the ones the run was started with, whose keys may be gone.
    A run made before the `latency` keys existed is timed with today's.
    """
    raw: dict[str, Any] = yaml.safe_load((run / RESOLVED_CONFIG).read_text())
    group = "server" if raw["distill"]["name"] == "off" else raw["distill"]["name"]
    packaged = compose_config([f"distill={group}"])
    raw["distill"] = packaged["distill"]
    raw.setdefault("latency", packaged["latency"])
    return raw


def distil_from(teacher_run: Path, out: Path, overrides: list[str]) -> None:
    """A new student from a finished run's exported teacher, into `out`."""
    raw = with_packaged_distill(teacher_run)
    merged = OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist(overrides))
    container = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(container, dict)
    config = {str(key): value for key, value in container.items()}
    config["run_dir"] = str(out)
    settings = settings_from_dict(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESOLVED_CONFIG).write_text(yaml.safe_dump(config))
    teacher = PooledBertForSequenceClassification.from_pretrained(
        teacher_run / TEACHER_DIR
    ).eval()
    task = load_task(settings.task, seed=settings.seed)
    entries = finish_models(
        settings,
        teacher=teacher,
        tokenizer=load_tokenizer_of(read_exported_folder(teacher_run / TEACHER_DIR)),
        test=task.test,
        server_texts=server_distill_texts(settings, task.transfer),
        run_dir=out,
    )
    (out / SUMMARY_FILE).write_text(json.dumps(entries, indent=2))


def print_validation_quality(run_dir: Path, teacher_run: Path) -> None:
    """Teacher and int8 student accuracy on `teacher_run`'s client validation splits."""
    settings = settings_from_dict(with_packaged_distill(teacher_run))
    if settings.task.val_fraction == 0:
        raise SystemExit(
            f"--validation-of {teacher_run}: that run trained on every client "
            "record (task.val_fraction 0, the default), so its clients hold no "
            "validation split; train the teacher with task.val_fraction=0.1"
        )
    texts: list[str] = []
    labels: list[int] = []
    for client in range(settings.num_clients):
        _, val, _ = load_client_data(settings, client)
        texts += list(val["text"])
        labels += list(val["label"])
    truth = np.asarray(labels)
    accuracy, picked = {}, {}
    for name, folder, runtime in (
        ("teacher (float ONNX)", TEACHER_DIR, "onnx"),
        ("student (int8 ONNX)", STUDENT_DIR, "onnx_int8"),
    ):
        picked[name] = predicted_labels(open_runtime(run_dir / folder, runtime), texts)
        accuracy[name] = float((picked[name] == truth).mean())
        print(f"validation accuracy, {name}: {accuracy[name]:.4f}")
    ratio = accuracy["student (int8 ONNX)"] / accuracy["teacher (float ONNX)"]
    print(
        f"validation accuracy ratio int8 student / teacher: {ratio:.3f} "
        f"({len(texts)} texts: {teacher_run}'s clients' validation splits)"
    )
    # What distillation aims at, and less noisy than the ratio for comparing
    # student settings: it counts every text, with no label involved.
    same = picked["student (int8 ONNX)"] == picked["teacher (float ONNX)"]
    agreement = float(same.mean())
    print(f"validation agreement, int8 student with teacher: {agreement:.3f}")


def print_latency(run_dir: Path) -> None:
    """Milliseconds per call of the four models, alternating, and the speed-ups."""
    settings = settings_from_dict(with_packaged_distill(run_dir))
    texts = list(load_task(settings.task, seed=settings.seed).test["text"])[:1280]
    models = {
        name: open_runtime(run_dir / folder, runtime)
        for name, (folder, runtime) in MODELS.items()
    }
    print(
        f"\n| batch | {' | '.join(f'{name} ms' for name in models)} | "
        "float student speed-up | int8 student speed-up |"
    )
    print("|---" * (len(models) + 3) + "|")
    for batch in BATCHES:
        ms = alternating_latency_ms(
            models, texts, batch_size=batch, repeats=BATCHES[batch]
        )
        teacher_ms = min(ms["teacher PyTorch"], ms["teacher ONNX"])
        cells = " | ".join(f"{value:.2f}" for value in ms.values())
        print(
            f"| {batch} | {cells} | {teacher_ms / ms['student ONNX']:.2f}x | "
            f"{teacher_ms / ms['student int8 ONNX']:.2f}x |"
        )
    print(
        "(speed-up: over the teacher's faster runtime; target >= 3x at batch 1, "
        ">= 5x at batch 32)"
    )
