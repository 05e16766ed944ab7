"""Distillation: student construction, losses, and the server path."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from fedmodel.config import RunSettings, StudentSettings
from fedmodel.data.tasks import load_task
from fedmodel.data.tokenization import make_text_loader
from fedmodel.distill import distilled_student
from fedmodel.distill import server as distill_server
from fedmodel.distill.augment import augment_texts
from fedmodel.distill.describe import agreement, log_comparison, picked_labels
from fedmodel.distill.finish import finish_models, server_distill_texts
from fedmodel.distill.inputs import teacher_targets
from fedmodel.distill.server import (
    DistillReport,
    distill_on_server,
    distill_step,
    pooled_match_loss,
    server_optimizer,
    soft_target_loss,
)
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.model.student import build_student
from fedmodel.model.student import student_layer_indices as layers_for
from fedmodel.training.embedding_cache import length_sorted_loader
from fedmodel.training.loops import text_logits, train_epochs
from tests.conftest import group_settings, small_settings


def _settings(*overrides: str) -> RunSettings:
    return small_settings("model.num_layers=4", *overrides)


def _teacher(settings, label_names, train=None) -> PooledBertForSequenceClassification:  # type: ignore[no-untyped-def]
    """A tiny teacher; fitted on labelled texts when `train` is given.

    A random tiny BERT answers nearly the same label for every text; a fitted
    one has a text-dependent function for a student to learn.
    """
    teacher = build_classifier(settings.model, label_names=label_names, seed=0)
    if train is not None:
        loader = make_text_loader(
            load_tokenizer(settings.model),
            list(train["text"]),
            list(train["label"]),
            max_length=32,
            batch_size=32,
            shuffle=True,
            seed=0,
        )
        train_epochs(
            teacher,
            loader,
            torch.optim.Adam(teacher.parameters(), lr=3e-3),
            logits_fn=text_logits(teacher),
            epochs=3,
        )
    return teacher.eval()


def _student(**values: object) -> StudentSettings:
    """The packaged student settings with `values` replaced."""
    return dataclasses.replace(group_settings("distill").student, **values)


def test_student_layers_spread_from_first_to_last() -> None:
    assert layers_for(6, _student(num_layers=2)) == [0, 5]
    assert layers_for(6, _student(num_layers=3)) == [0, 2, 5]
    assert layers_for(6, _student(num_layers=1)) == [5]
    assert layers_for(6, _student(num_layers=2, layers=[1, 4])) == [1, 4]


@pytest.mark.parametrize("layers", [[0, 6], [2, 2], [-1, 3]])
def test_bad_student_layers_name_the_key(layers: list[int]) -> None:
    with pytest.raises(FedmodelError, match=r"distill\.student\.layers"):
        layers_for(6, _student(num_layers=2, layers=layers))


def test_bad_distill_config_names_the_key() -> None:
    with pytest.raises(FedmodelError, match="distill.temperature"):
        _settings("distill.temperature=0")
    with pytest.raises(FedmodelError, match="distill.student.num_layers"):
        _settings("distill.student.layers=[0,1,2]")
    with pytest.raises(FedmodelError, match="distill.rounds"):
        _settings("distill=federated", "distill.rounds=0")


def test_student_copies_teacher_embeddings_head_and_chosen_layers() -> None:
    settings = _settings()
    teacher = _teacher(settings, ("a", "b", "c"))
    student = build_student(teacher, _student(num_layers=2, layers=[1, 3]))
    assert student.config.num_hidden_layers == 2
    assert teacher.config.num_hidden_layers == 4
    t, s = teacher.state_dict(), student.state_dict()
    for name in ("bert.embeddings.word_embeddings.weight", "classifier.weight"):
        assert torch.equal(s[name], t[name])
    for mine, theirs in ((0, 1), (1, 3)):
        key = "attention.self.query.weight"
        assert torch.equal(
            s[f"bert.encoder.layer.{mine}.{key}"],
            t[f"bert.encoder.layer.{theirs}.{key}"],
        )
    assert student.config.id2label == teacher.config.id2label
    # The student owns its tensors: training it cannot move the teacher.
    s["classifier.weight"].add_(1.0)
    assert not torch.equal(
        teacher.state_dict()["classifier.weight"], s["classifier.weight"]
    )


def test_augmented_texts_keep_the_originals_first_and_are_reproducible() -> None:
    texts = ["my card was lost yesterday", "where is my refund"]
    out = augment_texts(texts, copies=3, seed=7)
    assert out[:2] == texts
    assert len(out) == 8
    assert out == augment_texts(texts, copies=3, seed=7)


def test_losses_vanish_only_when_student_matches_teacher() -> None:
    logits = torch.randn(4, 5)
    assert soft_target_loss(logits, logits, temperature=2.0).item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert soft_target_loss(logits, -logits, temperature=2.0).item() > 0.1
    vectors = torch.randn(4, 8)
    assert pooled_match_loss(vectors, vectors).item() == pytest.approx(0.0, abs=1e-6)
    assert pooled_match_loss(vectors, -vectors).item() == pytest.approx(2.0)


def test_teacher_targets_come_back_in_input_order() -> None:
    settings = _settings()
    task = load_task(settings.task, seed=settings.seed)
    teacher = _teacher(settings, task.label_names).eval()
    tokenizer = load_tokenizer(settings.model)
    # Lengths out of order, so the length-sorted pass must put rows back.
    texts = ["a much longer text about a lost card and a refund", "hi", "my card"]
    logits, vectors = teacher_targets(
        teacher, texts, tokenizer=tokenizer, max_length=32, seed=0
    )
    for row, text in enumerate(texts):
        batch = make_text_loader(
            tokenizer, [text], [0], max_length=32, batch_size=1, shuffle=False, seed=0
        )
        inputs = next(iter(batch))
        with torch.no_grad():
            alone = teacher.embed(inputs["input_ids"], inputs["attention_mask"])
        torch.testing.assert_close(vectors[row], alone[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            logits[row], teacher.classify(alone)[0], atol=1e-5, rtol=1e-4
        )


def test_server_distillation_raises_agreement_with_the_teacher() -> None:
    settings = _settings(
        "distill.epochs=3",
        "distill.learning_rate=3e-3",
        "distill.student.num_layers=1",
    )
    task = load_task(settings.task, seed=settings.seed)
    teacher = _teacher(settings, task.label_names, task.train.select(range(300)))
    student = build_student(teacher, settings.distill.student)
    test_loader = length_sorted_loader(settings, task.test)
    teacher_labels = picked_labels(teacher, test_loader)
    before = agreement(
        picked_labels(student, test_loader), teacher_labels=teacher_labels
    )
    texts = server_distill_texts(settings, task.transfer)
    assert texts is not None
    report = distill_on_server(
        teacher,
        student,
        texts=texts[:300],
        tokenizer=load_tokenizer(settings.model),
        settings=settings.distill,
        max_length=settings.task.max_length,
        seed=0,
    )
    after = agreement(
        picked_labels(student, test_loader), teacher_labels=teacher_labels
    )
    assert report.num_texts == 300
    assert after > before + 0.1, (before, after)


def test_server_distillation_of_one_seed_gives_one_student() -> None:
    # Dropout drew from torch's unseeded global generator, so the demo's
    # student differed from run to run with the same seed.
    settings = _settings(
        "distill.epochs=1", "distill.student.num_layers=1", "model.dropout=0.1"
    )
    task = load_task(settings.task, seed=settings.seed)
    teacher = _teacher(settings, task.label_names)
    texts = server_distill_texts(settings, task.transfer)
    assert texts is not None
    start = build_student(teacher, settings.distill.student)
    students = []
    for _ in range(2):
        student = copy.deepcopy(start)
        distill_on_server(
            teacher,
            student,
            texts=texts[:64],
            tokenizer=load_tokenizer(settings.model),
            settings=settings.distill,
            max_length=settings.task.max_length,
            seed=3,
        )
        students.append(student.state_dict())
    assert all(torch.equal(students[0][k], students[1][k]) for k in students[0])


def _transfer_batches(
    settings: RunSettings, texts: int
) -> tuple[PooledBertForSequenceClassification, tuple[torch.Tensor, torch.Tensor], Any]:
    """A tiny teacher, its targets for the first `texts` transfer texts, their batches.

    Batches of 32 in order, whose "labels" are row numbers into the targets.
    """
    task = load_task(settings.task, seed=settings.seed)
    teacher = _teacher(settings, task.label_names)
    tokenizer = load_tokenizer(settings.model)
    chosen = list(task.transfer["text"])[:texts]
    targets = teacher_targets(
        teacher, chosen, tokenizer=tokenizer, max_length=32, seed=0
    )
    loader = make_text_loader(
        tokenizer,
        chosen,
        list(range(texts)),
        max_length=32,
        batch_size=32,
        shuffle=False,
        seed=0,
    )
    return teacher, targets, loader


def test_server_optimizer_steps_as_the_per_tensor_loop_bit_for_bit() -> None:
    settings = _settings()
    teacher, targets, loader = _transfer_batches(settings, 96)
    students = [build_student(teacher, settings.distill.student) for _ in range(2)]
    fast = server_optimizer(students[0], settings.distill)
    assert fast.defaults["foreach"] is True
    # The per-tensor loop (what PyTorch picks on a CPU) over the same parameters.
    frozen = students[1].bert.embeddings.word_embeddings.weight
    trained = [p for p in students[1].parameters() if p is not frozen]
    loop = torch.optim.AdamW(trained, lr=settings.distill.learning_rate, foreach=False)
    for batch in loader:
        for student, optimizer in zip(students, (fast, loop), strict=True):
            torch.manual_seed(0)  # the same dropout masks for both students
            student.train()
            distill_step(
                student, batch, optimizer, targets=targets, settings=settings.distill
            )
    pairs = zip(students[0].parameters(), students[1].parameters(), strict=True)
    assert all(torch.equal(mine, theirs) for mine, theirs in pairs)
    untrained = build_student(teacher, settings.distill.student).classifier.weight
    assert not torch.equal(students[0].classifier.weight, untrained)


def test_a_step_in_length_chunks_is_the_whole_batchs_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a CPU a batch runs in chunks by length; the update is the whole batch's."""
    settings = _settings()
    teacher, targets, loader = _transfer_batches(settings, 32)
    batch = next(iter(loader))
    losses, weights = [], []
    for cost in (10**9, 0):  # one chunk; a chunk for each length in the batch
        monkeypatch.setattr(distill_server, "CHUNK_COST", cost)
        student = build_student(teacher, settings.distill.student).eval()  # no dropout
        optimizer = torch.optim.SGD(student.parameters(), lr=1.0)
        losses.append(
            distill_step(
                student, batch, optimizer, targets=targets, settings=settings.distill
            )
        )
        weights.append([p.detach().clone() for p in student.parameters()])
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)  # 1 - cosine near 0
    for whole, chunked in zip(*weights, strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
    untrained = build_student(teacher, settings.distill.student).parameters()
    assert not all(map(torch.equal, weights[0], untrained))  # the step moved it


def test_finishing_runs_each_model_over_the_test_split_once_after_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pass that measures a model's test accuracy also gives its labels
    # for the agreement: before, the teacher and the distilled student each
    # ran over the test split again for it (a minute more of the demo).
    settings = _settings(
        "distill.student.num_layers=1",
        "distill.epochs=1",
        "distill.augment_copies=0",
        "latency.calls_batch1=1",
        "latency.calls_batch32=1",
    )
    task = load_task(settings.task, seed=settings.seed)
    teacher = _teacher(settings, task.label_names)
    read: dict[str, list[int]] = {"teacher": [], "student": []}

    def count(name: str, model: PooledBertForSequenceClassification) -> None:
        def hook(module: torch.nn.Module, _args: object, output: Any) -> None:
            # Inference passes only: not training, nor the export's trace.
            if not module.training and not torch.jit.is_tracing():
                read[name].append(len(output[0]))

        model.bert.register_forward_hook(hook)

    students: list[PooledBertForSequenceClassification] = []

    def counted_student(*args: Any, **kwargs: Any) -> Any:
        students.append(build_student(*args, **kwargs))
        count("student", students[-1])
        return students[-1]

    count("teacher", teacher)
    monkeypatch.setattr(distilled_student, "build_student", counted_student)
    texts = list(task.transfer["text"])[:8]
    entries = finish_models(
        settings,
        teacher=teacher,
        tokenizer=load_tokenizer(settings.model),
        test=task.test,
        server_texts=texts,
        run_dir=tmp_path,
    )
    tests = len(task.test)
    # The teacher: its measured test pass and its targets on the server's texts.
    assert sum(read["teacher"]) == tests + len(texts)
    # The student: its agreement before distillation, then its measured pass.
    assert sum(read["student"]) == 2 * tests
    # The same figure as from a pass of each for the agreement alone.
    test_loader = length_sorted_loader(settings, task.test)
    assert entries["distillation"]["agreement_after"] == agreement(
        picked_labels(students[0], test_loader),
        teacher_labels=picked_labels(teacher, test_loader),
    )


@pytest.mark.parametrize(
    ("copies", "said"),
    [
        (4, "on 60 server-held texts and 4 perturbed copies of each, 300 texts an "),
        (1, "on 60 server-held texts and 1 perturbed copy of each, 120 texts an "),
        (0, "on 60 server-held texts (no client record is read"),
    ],
)
def test_the_distillation_line_counts_the_copies_each_epoch_trains_on(
    copies: int,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before: "on 60 server-held texts", then each epoch "... on 300 texts".
    settings = _settings(f"distill.augment_copies={copies}")
    student = build_classifier(settings.model, label_names=("a", "b"), seed=0)
    done = DistillReport(num_texts=60 * (1 + copies), seconds=0.0)
    monkeypatch.setattr(distilled_student, "distill_on_server", lambda *a, **k: done)
    with caplog.at_level("INFO", logger="fedmodel.distill.distilled_student"):
        distilled_student._distil_on_server_texts(
            settings,
            student,
            student,
            tokenizer=load_tokenizer(settings.model),
            texts=["a text"] * 60,
            student_max_length=64,
            student_resumed=False,
        )
    assert said in caplog.text


def test_server_distillation_texts_are_held_by_no_client() -> None:
    settings = _settings()
    task = load_task(settings.task, seed=settings.seed)
    texts = server_distill_texts(settings, task.transfer)
    assert texts is not None and len(texts) == 1000
    assert not set(texts) & set(task.train["text"])


def test_distill_transfer_file_replaces_the_transfer_split(tmp_path: Path) -> None:
    path = tmp_path / "public.txt"
    path.write_text("first public text\n\nsecond public text\n")
    settings = _settings(f"distill.transfer_file={path}")
    assert server_distill_texts(settings, None) == [
        "first public text",
        "second public text",
    ]
    missing = dataclasses.replace(
        settings,
        distill=dataclasses.replace(
            settings.distill, transfer_file=str(tmp_path / "nope.csv")
        ),
    )
    with pytest.raises(FedmodelError, match=r"distill\.transfer_file.*nope\.csv"):
        server_distill_texts(missing, None)


class _OpenLog:
    """The paths this process opens while `recording`, however `open` was reached.

    An audit hook (PEP 578) sees builtins.open, io.open and os.open under
    every wrapper (pathlib, pandas' CSV reader, a loader imported at a
    module's top). A hook cannot be removed, so one is added per process and
    records only inside `recording`. Pyarrow's own reads (Parquet) raise no
    audit event: the sites' files it guards are CSV.
    """

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.on = False
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if self.on and event == "open" and isinstance(args[0], str | bytes | Path):
            self.paths.append(os.fsdecode(args[0]))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[str]]:
        self.paths, self.on = [], True
        try:
            yield self.paths
        finally:
            self.on = False


@functools.cache
def _open_log() -> _OpenLog:
    return _OpenLog()


def _files_run(folder: Path, *overrides: str) -> RunSettings:
    """A files run: three sites' CSV files, the server's test and transfer files."""
    topics = ("card", "refund")

    def write(name: str, count: int) -> str:
        rows = [
            f"{name} text {i} about my {topics[i % 2]},{topics[i % 2]}"
            for i in range(count)
        ]
        (folder / f"{name}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
        return str(folder / f"{name}.csv")

    sites = ",".join(write(f"site{i}", 30) for i in range(3))
    return _settings(
        "task=files",
        f"task.train_files=[{sites}]",
        f"task.test_file={write('test', 40)}",
        f"task.validation_file={write('public', 64)}",
        "partition=natural",
        "distill.student.num_layers=1",
        *overrides,
    )


def test_server_path_trains_on_transfer_texts_only_and_reads_no_client_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fedmodel.distill.inputs
    import fedmodel.serve.benchmark

    seen: list[str] = []
    real_loader = fedmodel.distill.inputs.make_text_loader

    def spy(tokenizer, texts, labels, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return real_loader(tokenizer, texts, labels, **kwargs)

    monkeypatch.setattr(fedmodel.distill.inputs, "make_text_loader", spy)
    measured: list[dict[tuple[str, str], float]] = []
    calls: list[tuple[int, int]] = []
    real_latency = fedmodel.serve.benchmark.alternating_latency_ms

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((kwargs["batch_size"], kwargs["repeats"]))
        measured.append(real_latency(*args, **kwargs))
        return measured[-1]

    monkeypatch.setattr(fedmodel.serve.benchmark, "alternating_latency_ms", timed)
    settings = _files_run(tmp_path, "latency.calls_batch1=2", "latency.calls_batch32=1")
    task = load_task(settings.task, seed=settings.seed)
    transfer = task.transfer
    teacher = _teacher(settings, task.label_names)
    tokenizer = load_tokenizer(settings.model)
    with _open_log().recording() as opened:
        entries = finish_models(
            settings,
            teacher=teacher,
            tokenizer=tokenizer,
            test=task.test,
            server_texts=server_distill_texts(settings, transfer),
            run_dir=tmp_path / "run",
        )
    sites = {Path(name).resolve() for name in settings.task.train_files}
    read = sorted(str(path) for path in sites & {Path(p).resolve() for p in opened})
    assert not read, f"distillation opened the sites' files {read}"
    assert opened  # the hook saw the run's own files (the exports) written
    assert seen and set(seen) <= set(transfer["text"])
    assert not set(seen) & set(task.train["text"])
    assert entries["distillation"]["server_texts"] == 64
    for name in ("teacher", "student"):
        figures = entries[name]
        assert 0.0 <= figures["accuracy"] <= 1.0
    # Latencies are the measured ones (the timer itself is tested with a fake
    # clock in test_export_predict.py), and every runtime of both models took
    # turns in one timing per batch size, so all saw the same machine load.
    runtimes = {
        ("teacher", "torch"),
        ("teacher", "onnx"),
        ("student", "torch"),
        ("student", "onnx"),
        ("student", "onnx_int8"),
    }
    assert [set(timing) for timing in measured] == [runtimes, runtimes]
    assert calls == [(1, 2), (32, 1)]  # latency.calls_batch1 and _batch32
    for (name, runtime), ms in measured[0].items():
        assert entries[name][f"{runtime}_latency_ms_batch1"] == ms
    for (name, runtime), ms in measured[1].items():
        assert entries[name][f"{runtime}_latency_ms_batch32"] == ms
    assert entries["student"]["num_layers"] == 1
    assert entries["student"]["parameters"] < entries["teacher"]["parameters"]
    assert (tmp_path / "run" / "student" / "model.onnx").is_file()
    assert (tmp_path / "run" / "model" / "model.onnx").is_file()
    # The student ships an int8 graph too; the teacher only its float one.
    assert (tmp_path / "run" / "student" / "model.int8.onnx").is_file()
    assert not (tmp_path / "run" / "model" / "model.int8.onnx").exists()
    quantized = entries["student"]["quantized"]
    assert 0.0 <= quantized["accuracy"] <= 1.0
    assert 0.0 <= quantized["agreement_with_float"] <= 1.0
    # The sizes are the files' own. (On this tiny BERT the int8 graph is not
    # smaller: its embedding table stays float and dominates; the MiniLM
    # student's is, tests/unit/test_student_serving.py.)
    int8_file = tmp_path / "run" / "student" / "model.int8.onnx"
    assert quantized["onnx_size_bytes"] == int8_file.stat().st_size
    float_file = tmp_path / "run" / "student" / "model.onnx"
    assert entries["student"]["onnx_size_bytes"] == float_file.stat().st_size
    assert entries["student"]["onnx_int8_latency_ms_batch32"] > 0
    versus = entries["student_vs_teacher"]
    assert versus["served_speedup_batch1"] > 0
    assert versus["served_accuracy_ratio"] is not None


def _finish_without_server_texts(
    settings: RunSettings, run_dir: Path
) -> dict[str, object]:
    """`finish_models` of a tiny teacher for a run whose server holds no texts."""
    task = load_task(settings.task, seed=settings.seed)
    return finish_models(
        settings,
        teacher=_teacher(settings, task.label_names),
        tokenizer=load_tokenizer(settings.model),
        test=task.test,
        server_texts=None,
        run_dir=run_dir,
    )


def test_distill_off_keeps_an_earlier_student_and_says_it_is_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A resume with distill=off of a run whose earlier start distilled.
    settings = _files_run(tmp_path)
    settings = dataclasses.replace(
        settings, distill=dataclasses.replace(settings.distill, name="off")
    )
    run_dir = tmp_path / "run"
    earlier = run_dir / "student" / "model.onnx"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"the earlier start's student")
    with caplog.at_level("WARNING", logger="fedmodel.distill.finish"):
        entries = _finish_without_server_texts(settings, run_dir)
    assert "student" not in entries
    assert earlier.read_bytes() == b"the earlier start's student"  # not removed
    assert f"{run_dir / 'student'} holds a student from an earlier start" in (
        caplog.text
    )
    assert "does not match the teacher" in caplog.text


def test_the_end_of_a_run_without_server_texts_says_only_what_came_of_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The full warning is said before round 1; the end of the run repeated it
    # word for word, so the console showed it twice.
    settings = _files_run(tmp_path, "task.validation_file=null", "distill=server")
    with caplog.at_level("WARNING", logger="fedmodel.distill.distilled_student"):
        entries = _finish_without_server_texts(settings, tmp_path / "run")
    assert "student" not in entries
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("student")]
    assert lines == ["no student is made: the server holds no texts to distil on"]


@pytest.mark.parametrize(
    ("distill", "said"),
    [
        ("server", "no student is made; name either file"),
        ("federated", "the clients alone distil it"),
        ("off", None),
    ],
)
def test_a_files_run_without_server_texts_says_so_before_round_one(
    distill: str, said: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, only after the last round: "the server holds no transfer texts
    # (set distill.transfer_file)", naming neither task.validation_file nor
    # that no student would come.
    from fedmodel.federation.server_app import warn_about_records

    settings = _files_run(tmp_path, "task.validation_file=null", f"distill={distill}")
    task = load_task(settings.task, seed=settings.seed)
    with caplog.at_level("WARNING", logger="fedmodel.federation.preflight"):
        warn_about_records(settings, task, distill_texts=None)
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("preflight")]
    if said is None:
        assert lines == []
        return
    (line,) = lines
    assert line.startswith(
        "the server holds no texts to distil the student on (a files task without "
        "task.validation_file or distill.transfer_file): "
    )
    assert said in line


def test_comparison_line_says_untimed_for_a_batch_the_test_split_cannot_fill(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A files task's test file of under 32 texts: batch 32 is not timed, so
    # the comparison holds no batch-32 speed-up (the line printed `nanx`).
    model = {"accuracy": 0.5, "num_layers": 2}
    entries = {
        "teacher": model,
        "student": {**model, "quantized": {"accuracy": 0.5, "agreement_with_float": 1}},
        "student_vs_teacher": {
            "accuracy_ratio": 1.0,
            "served_accuracy_ratio": 1.0,
            "served_speedup_batch1": 2.04,
        },
        "distillation": {"agreement_before": 0.5, "agreement_after": 0.9},
    }
    with caplog.at_level("INFO", logger="fedmodel.distill.describe"):
        log_comparison(entries)
    assert "2.0x / untimed faster at batch 1 / 32" in caplog.text
    assert "nan" not in caplog.text
