"""Server distillation's time per epoch: random batches against length-grouped ones.

Distillation pads each batch to its longest text. Random batches of short
texts of mixed lengths (Banking77's queries, ICD-10-CM descriptions) are
mostly padding; batches grouped by length (`LengthGroupedBatches`, what
`distill_on_server` uses) are not. This takes a task's transfer texts with
their augmented copies, as a run's distillation does, builds the default
student from the shipped MiniLM and times distillation epochs with each kind
of batch in turn (alternating, the same texts and targets, a fresh student
for each), then prints seconds per epoch, the ratio, and the share of padding
tokens. Speed only: accuracy needs a finished teacher (benchmarks/distill.py).
Usage:

    .venv/bin/python benchmarks/distill_batching.py [--task bank] [--epochs 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data import load_task, make_text_loader
from fedmodel.distill.finish import server_distill_texts
from fedmodel.distill.server import augment_texts, distill_epoch, teacher_targets
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.model.student import build_student


def padding_share(loader: torch.utils.data.DataLoader) -> float:
    """The share of a pass's token slots that are padding."""
    slots, real = 0, 0
    for batch in loader:
        slots += batch["attention_mask"].numel()
        real += int(batch["attention_mask"].sum())
    return 1.0 - real / slots


def main() -> None:
    """Time distillation epochs with random and with length-grouped batches."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bank", help="bank or hospital")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per kind")
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = settings_from_dict(
        {**compose_config([f"task={args.task}"]), "run_dir": ""}
    )
    distill = settings.distill
    task = load_task(settings.task, seed=settings.seed)
    texts = server_distill_texts(settings, task.transfer)
    assert texts is not None, "the task has no transfer split"
    inputs = augment_texts(texts, copies=distill.augment_copies, seed=settings.seed)
    tokenizer = load_tokenizer(settings.model)
    teacher = build_classifier(
        settings.model, label_names=task.label_names, seed=0
    ).eval()
    targets = teacher_targets(
        teacher,
        inputs,
        tokenizer=tokenizer,
        max_length=settings.task.max_length,
        seed=settings.seed,
    )
    seconds: dict[bool, list[float]] = {False: [], True: []}
    padding: dict[bool, float] = {}
    students = {}
    for grouped in (False, True):
        # As distill_on_server trains it: everything but the word embeddings.
        student = build_student(teacher, distill.student)
        word_embeddings = student.bert.embeddings.word_embeddings.weight
        word_embeddings.requires_grad_(False)
        params = [p for p in student.parameters() if p is not word_embeddings]
        optimizer = torch.optim.AdamW(params, lr=distill.learning_rate)
        loader = make_text_loader(
            tokenizer,
            inputs,
            list(range(len(inputs))),
            max_length=distill.student.max_length or settings.task.max_length,
            batch_size=distill.batch_size,
            shuffle=True,
            seed=settings.seed,
            group_by_length=grouped,
        )
        padding[grouped] = padding_share(loader)
        students[grouped] = (student, loader, optimizer)
    print(
        f"{args.task}: {len(inputs)} texts ({len(texts)} transfer texts and "
        f"{distill.augment_copies} copies of each), batch {distill.batch_size}, "
        f"{args.epochs} timed epochs per kind, alternating",
        flush=True,
    )
    for epoch in range(args.epochs):
        for grouped in (False, True):
            student, loader, optimizer = students[grouped]
            student.train()
            started = time.perf_counter()
            loss = distill_epoch(
                student, loader, optimizer, targets=targets, settings=distill
            )
            seconds[grouped].append(time.perf_counter() - started)
            kind = "length-grouped" if grouped else "random"
            print(
                f"  epoch {epoch + 1}, {kind} batches: {seconds[grouped][-1]:.1f} s "
                f"(loss {loss:.4f})",
                flush=True,
            )
    random_s = statistics.median(seconds[False])
    grouped_s = statistics.median(seconds[True])
    print("| batches | padding share | seconds per epoch (median) |")
    print("|---|---|---|")
    print(f"| random | {padding[False]:.2f} | {random_s:.1f} |")
    print(f"| length-grouped | {padding[True]:.2f} | {grouped_s:.1f} |")
    print(f"random / length-grouped time: {random_s / grouped_s:.2f}x")


if __name__ == "__main__":
    main()
