"""Export (Hugging Face + ONNX), parity between them, and `fedmodel predict`."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from fedmodel.cli.main import run_command
from fedmodel.config import LatencySettings
from fedmodel.data.tasks import load_task
from fedmodel.data.text_inputs import read_input_texts
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.model.student import build_student
from fedmodel.serve import export, inference
from fedmodel.serve.benchmark import LATENCY_BATCHES, predicted_labels
from fedmodel.serve.export import ONNX_FILE, export_classifier
from fedmodel.serve.inference import alternating_latency_ms, load_classifier
from fedmodel.serve.onnx_runtime import OnnxClassifier
from fedmodel.serve.torch_runtime import TorchClassifier
from tests.conftest import small_settings


@pytest.fixture(scope="module")
def bank_texts() -> list[str]:
    settings = small_settings()
    return list(load_task(settings.task, seed=0).test["text"])[:64]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = small_settings()
    model = build_classifier(
        settings.model, label_names=("card", "refund", "top_up"), seed=3
    )
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)
    out = tmp_path_factory.mktemp("exported") / "model"
    return export_classifier(model, load_tokenizer(settings.model), out, max_length=48)


def test_onnx_logits_match_pytorch_on_real_texts(
    exported: Path, bank_texts: list[str]
) -> None:
    torch_logits = TorchClassifier(exported).logits(bank_texts)
    onnx_logits = OnnxClassifier(exported / ONNX_FILE).logits(bank_texts)
    assert torch_logits.shape == (64, 3)
    assert np.abs(torch_logits - onnx_logits).max() < 1e-4
    # One text at a time (no padding) and a long text (truncated) agree too.
    for texts in (bank_texts[:1], ["word " * 300]):
        assert (
            np.abs(
                TorchClassifier(exported).logits(texts)
                - OnnxClassifier(exported / ONNX_FILE).logits(texts)
            ).max()
            < 1e-4
        )


@pytest.mark.slow  # exports the 15.5M-parameter MiniLM student to ONNX
def test_onnx_parity_for_the_shipped_minilm_student(
    tmp_path: Path, bank_texts: list[str]
) -> None:
    settings = small_settings("model=minilm")
    teacher = build_classifier(settings.model, label_names=("a", "b"), seed=0)
    student = build_student(teacher, settings.distill.student)
    out = export_classifier(
        student, load_tokenizer(settings.model), tmp_path / "s", max_length=64
    )
    difference = np.abs(
        TorchClassifier(out).logits(bank_texts)
        - OnnxClassifier(out / ONNX_FILE).logits(bank_texts)
    )
    assert difference.max() < 1e-4


def test_exported_folder_keeps_labels_and_training_length(exported: Path) -> None:
    config = json.loads((exported / "config.json").read_text())
    assert config["id2label"] == {"0": "card", "1": "refund", "2": "top_up"}
    assert TorchClassifier(exported).tokenizer.model_max_length == 48
    reloaded = PooledBertForSequenceClassification.from_pretrained(exported)
    assert reloaded.config.num_labels == 3


def test_an_export_leaves_the_process_tokenizer_as_it_was(exported: Path) -> None:
    # Every caller in a process shares load_tokenizer's object (the `exported`
    # fixture exported with it, at 48 tokens): the export sets its length in
    # a copy, and the run goes on with the tokenizer as the encoder's folder has it.
    settings = small_settings()
    tokenizer = load_tokenizer(settings.model)
    assert tokenizer is load_tokenizer(dataclasses.replace(settings.model))
    assert tokenizer.model_max_length == 512
    saved = json.loads((exported / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == 48


def test_an_export_stopped_midway_leaves_the_earlier_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stop (Ctrl-C, a crash) while a resumed run re-exported the model left
    # the new weights beside the earlier export's ONNX graphs, which predict
    # serves by default: two models' files in one folder.
    settings = small_settings()
    tokenizer = load_tokenizer(settings.model)
    out = tmp_path / "model"
    earlier = build_classifier(settings.model, label_names=("a", "b"), seed=0)
    export_classifier(earlier, tokenizer, out, max_length=48)
    (out / "README.md").write_text("the earlier start's card\n")
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_onnx", stopped)
    later = build_classifier(settings.model, label_names=("a", "b"), seed=1)
    with pytest.raises(KeyboardInterrupt):
        export_classifier(later, tokenizer, out, max_length=48)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files
    monkeypatch.undo()
    export_classifier(later, tokenizer, out, max_length=48)
    assert not (out / "README.md").exists()  # the card of the earlier weights
    assert (out / "model.safetensors").read_bytes() != files["model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_latency_is_measured_per_call(
    exported: Path, bank_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = load_classifier(exported)
    # A clock that reads 10, 30 and 20 ms across the three timed calls: the
    # result is their median, so only each call (not the warm-up) is timed.
    ticks = iter([0.0, 0.010, 1.0, 1.030, 2.0, 2.020])
    monkeypatch.setattr(
        inference, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks))
    )
    latency = alternating_latency_ms(
        {"model": classifier}, bank_texts, batch_size=32, repeats=3
    )
    assert latency == pytest.approx({"model": 20.0})
    monkeypatch.undo()
    with pytest.raises(ValueError, match="at least 32"):
        alternating_latency_ms(
            {"model": classifier}, bank_texts[:5], batch_size=32, repeats=3
        )


def test_alternating_latency_times_each_model_in_turn_on_the_same_batches(
    exported: Path, bank_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = load_classifier(exported), load_classifier(exported)
    seen: list[tuple[str, str]] = []
    for name, classifier in (("a", first), ("b", second)):
        logits = classifier.logits
        monkeypatch.setattr(
            classifier,
            "logits",
            lambda texts, name=name, logits=logits: (
                seen.append((name, texts[0])) or logits(texts)
            ),
        )
    latency = alternating_latency_ms(
        {"a": first, "b": second}, bank_texts, batch_size=4, repeats=6
    )
    assert set(latency) == {"a", "b"}
    # Warm-ups, then a and b in turn, each round on the same batch.
    assert [name for name, _ in seen[:2]] == ["a", "b"]
    rounds = [seen[i : i + 2] for i in range(2, len(seen), 2)]
    assert len(rounds) == 6
    for calls in rounds:
        assert sorted(name for name, _ in calls) == ["a", "b"]
        assert calls[0][1] == calls[1][1]
    # Neither always goes first.
    assert {calls[0][0] for calls in rounds} == {"a", "b"}


class _AfterTorchClock:
    """A clock that the fakes below advance: a call right after torch's is slow."""

    def __init__(self) -> None:
        self.now = 0.0
        self.last = ""

    def perf_counter(self) -> float:
        return self.now


class _Timed:
    label_names = ("a", "b")

    def __init__(self, name: str, clock: _AfterTorchClock) -> None:
        self.name, self.clock = name, clock

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        cost = 0.005 if self.name == "torch" else 0.001
        self.clock.now += cost * (2 if self.clock.last == "torch" else 1)
        self.clock.last = self.name
        return np.zeros((len(texts), 2), dtype=np.float32)


def test_no_runtime_is_timed_slow_for_always_running_after_the_same_one(
    bank_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a fixed order, so the teacher's ONNX graph always ran right after
    # its PyTorch model, and was timed slow (up to 3x at batch 1 on a 2-core
    # machine) against the same kind of graph elsewhere in the order.
    clock = _AfterTorchClock()
    monkeypatch.setattr(inference, "time", clock)
    names = ("torch", "onnx", "student onnx", "student int8")
    latency = alternating_latency_ms(
        {name: _Timed(name, clock) for name in names},
        bank_texts,
        batch_size=1,
        repeats=40,
    )
    assert latency["onnx"] == latency["student onnx"] == latency["student int8"]


class _BatchRecorder:
    """A classifier that records the texts of each call."""

    label_names = ("a", "b")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.zeros((len(texts), 2), dtype=np.float32)


def test_the_run_measures_the_int8_graph_in_the_batches_predict_serves() -> None:
    # Dynamic int8 quantization scales activations per call, so a label can
    # depend on its batch. Before: predict called the runtime with 32 texts,
    # summary.json's int8 accuracy and agreement_with_float came from 64.
    texts = [f"text {i}" for i in range(150)]
    served, measured = _BatchRecorder(), _BatchRecorder()
    inference.predict(served, texts, top_k=1)
    predicted_labels(measured, texts)
    assert served.calls == measured.calls


def test_each_timed_batch_size_has_its_calls_key() -> None:
    # served_latency_ms takes latency.calls_batch{n} for each batch size n.
    keys = {f"calls_batch{n}" for n in LATENCY_BATCHES}
    assert keys == {spec.name for spec in dataclasses.fields(LatencySettings)}


@pytest.mark.parametrize("target", ["folder", "onnx"])
def test_predict_prints_labels_with_probabilities(
    target: str, exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = exported if target == "folder" else exported / ONNX_FILE
    code = run_command(
        [
            "predict",
            "--model",
            str(model),
            "--text",
            "my card is lost",
            "--text",
            "refund please",
            "--format",
            "jsonl",
            "--top-k",
            "2",
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["my card is lost", "refund please"]
    for line in lines:
        assert line["label"] in ("card", "refund", "top_up")
        probabilities = [item["probability"] for item in line["top"]]
        assert len(probabilities) == 2
        assert probabilities[0] >= probabilities[1]
        assert 0.0 < sum(probabilities) <= 1.0 + 1e-6


def test_predict_reads_an_input_file_and_both_formats_agree(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_text(
        '{"body": "lost card"}\n{"body": "top up failed"}\n{"body": "refund"}\n'
    )
    outputs = []
    for model in (exported, exported / ONNX_FILE):
        argv = ["--model", str(model), "--input", str(texts), "--text-column", "body"]
        assert run_command(["predict", *argv, "--format", "jsonl"]) == 0
        outputs.append(
            [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        )
    torch_rows, onnx_rows = outputs
    assert len(torch_rows) == 3
    for mine, theirs in zip(torch_rows, onnx_rows, strict=True):
        assert mine["label"] == theirs["label"]
        assert mine["probability"] == pytest.approx(theirs["probability"], abs=1e-5)
    assert _predict("--model", str(exported), "--input", str(texts)) == 2
    error = capsys.readouterr().err
    assert "has no text column 'text' (columns found: ['body'])" in error


def test_predict_table_output(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _predict("--model", str(exported), "--text", "lost card") == 0
    out = capsys.readouterr().out
    assert "lost card" in out and "probability" in out


@pytest.mark.parametrize(
    ("make_model", "message"),
    [
        (lambda tmp: tmp / "missing", "no such file or folder"),
        (lambda tmp: tmp, "no config.json"),
        (
            lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("x"))[0],
            "neither a model folder nor an .onnx file",
        ),
        (
            lambda tmp: (tmp / "bad.onnx", (tmp / "bad.onnx").write_text("x"))[0],
            "not a loadable ONNX model",
        ),
    ],
)
def test_predict_names_a_bad_model_path(
    make_model, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    model = make_model(tmp_path)
    assert _predict("--model", str(model), "--text", "x") == 2
    err = capsys.readouterr().err
    assert message in err and str(model) in err


def test_predict_at_a_run_folder_names_its_model_folders(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "no config.json in this folder", as for a folder that is no run.
    run = tmp_path / "run"
    shutil.copytree(exported, run / "model")
    assert run_command(["predict", "--model", str(run), "--text", "hi"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel predict: error: --model {run}: a run folder, not a model "
        f"folder; point at {run / 'model'}"
    )


def test_predict_at_a_run_folder_says_so_before_reading_the_input(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: the input was read first, by the column `text` (the run's
    # task.text_column is read only beside a model/ folder), so a table of the
    # run's own format was refused with "has no text column 'text' ... name it
    # with --text-column"; with that given, the run folder was named at last.
    run = _run_of_notes(exported, tmp_path)
    table = tmp_path / "notes.jsonl"
    table.write_text('{"note": "my card is lost", "label": "card"}\n')
    assert _predict("--model", str(run), "--input", str(table)) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel predict: error: --model {run}: a run folder, not a model "
        f"folder; point at {run / 'model'}"
    )


def test_predict_names_an_unreadable_input(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "texts.txt"
    binary.write_bytes(b"good line\n\xff\xfe bad\n")
    assert _predict("--model", str(exported), "--input", str(binary)) == 2
    assert "not UTF-8" in capsys.readouterr().err
    missing = tmp_path / "nothing.csv"
    assert _predict("--model", str(exported), "--input", str(missing)) == 2
    assert "does not exist" in capsys.readouterr().err
    # Before, a missing .txt file had a message of its own that said not
    # what to do: "does not exist or is not a file". Now it is refused as a
    # table's path is.
    missing_txt = tmp_path / "nothing.txt"
    assert _predict("--model", str(exported), "--input", str(missing_txt)) == 2
    assert f"--input: file {missing_txt} does not exist" in (
        err := capsys.readouterr().err
    )
    assert "fix the path (relative paths are relative to the working" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(FedmodelError, match="holds no text lines"):
        read_input_texts(empty, key="--input")


def test_predict_refuses_a_txt_header_of_the_runs_text_column(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a run trained on a `note` column labelled the header line `note`
    # of that column's export as if it were a record.
    run = _run_of_notes(exported, tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("\nNote\nmy card is lost\n")
    for model in (run / "model", run / "model" / ONNX_FILE):
        assert _predict("--model", str(model), "--input", str(notes)) == 2
        assert capsys.readouterr().err.strip() == (
            f"fedmodel predict: error: --input: file {notes} starts with the line "
            "'Note' (line 2), a column name, but texts given one per line have no "
            "header: every line is a text. Remove that line"
        )
    # Outside a run folder nothing names `note` a column: a one-word text.
    argv = ["--model", str(exported), "--input", str(notes), "--format", "jsonl"]
    assert _predict(*argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["text"] == "Note"


def test_predict_reads_a_table_by_the_runs_text_column(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a table in the run's own format (texts under `note`) failed with
    # "has no text column 'text'" unless --text-column note was given.
    run = _run_of_notes(exported, tmp_path)
    table = tmp_path / "notes.csv"
    table.write_text("note,label\nmy card is lost,x\nrefund please,y\n")
    argv = ["--model", str(run / "model"), "--input", str(table), "--format", "jsonl"]
    assert _predict(*argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["text"] for line in lines] == [
        "my card is lost",
        "refund please",
    ]
    # An explicit option still wins.
    assert _predict(*argv, "--text-column", "label") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["x", "y"]


def _run_of_notes(exported: Path, tmp_path: Path) -> Path:
    """A run folder holding `exported` as its model, trained on a `note` column."""
    run = tmp_path / "run"
    shutil.copytree(exported, run / "model")
    (run / "resolved_config.yaml").write_text("task:\n  text_column: note\n")
    return run


def _predict(*argv: str) -> int:
    return run_command(["predict", *argv])


def test_predict_refuses_an_empty_text(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for blank in ("", "   "):
        argv = ["--model", str(exported), "--text", "ok", "--text", blank]
        assert _predict(*argv) == 2
        captured = capsys.readouterr()
        assert "--text number 2 is empty" in captured.err and not captured.out
        assert "Traceback" not in captured.err


def test_predict_names_a_damaged_weights_file(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    shutil.copytree(exported, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert _predict("--model", str(model), "--runtime", "torch", "--text", "x") == 2
    err = capsys.readouterr().err
    assert f"{weights} is damaged" in err and "copy the file again" in err
    assert "Traceback" not in err


def test_predict_names_a_config_that_does_not_match_the_weights(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    shutil.copytree(exported, model)
    config = json.loads((model / "config.json").read_text())
    config["id2label"] = {}
    (model / "config.json").write_text(json.dumps(config))
    assert _predict("--model", str(model), "--runtime", "torch", "--text", "x") == 2
    err = capsys.readouterr().err
    assert f"{model / 'config.json'} does not match the saved weights" in err
    assert "classifier.weight" in err and "id2label names 0 labels" in err


def test_predict_input_that_is_empty_asks_for_no_label_column(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert _predict("--model", str(exported), "--input", str(empty)) == 2
    err = capsys.readouterr().err
    assert f"{empty} is empty" in err and "label" not in err


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_predict_input_of_an_empty_jsonl_file_says_it_holds_no_rows(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    # Before: "has no text column 'text' (columns found: [])".
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    assert _predict("--model", str(exported), "--input", str(empty)) == 2
    assert capsys.readouterr().err.strip() == (
        f"fedmodel predict: error: --input: file {empty} holds no rows"
    )


def test_the_int8_graph_is_written_without_the_quantizers_log_lines(
    exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # ONNX Runtime's quantizer logs each op it skips on the root logger: 14
    # INFO and WARNING lines of a default run's fedmodel.log, before.
    with caplog.at_level("INFO"):
        export.quantize_onnx(exported / ONNX_FILE, tmp_path / "model.int8.onnx")
        logging.getLogger().info("a root line of someone else's")
    assert (tmp_path / "model.int8.onnx").is_file()
    assert [r.getMessage() for r in caplog.records if r.name == "root"] == [
        "a root line of someone else's"
    ]
