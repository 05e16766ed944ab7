"""The narrow student, its int8 ONNX graph, and folders that load with stock tools."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fedmodel.cli.main import run_command
from fedmodel.config import StudentSettings
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.model.student import build_student, feed_forward_keep, student_width
from fedmodel.serve.benchmark import predicted_labels
from fedmodel.serve.export import ONNX_FILE, QUANTIZED_ONNX_FILE, export_classifier
from fedmodel.serve.inference import load_classifier, open_runtime
from fedmodel.serve.onnx_runtime import OnnxClassifier
from fedmodel.serve.torch_runtime import TorchClassifier
from tests.conftest import group_settings, small_settings

# int8 weights move logits a little; on real texts the label may flip only
# where the float student's top two labels are nearly tied. This untrained
# student with a random head has many near ties (0.96 measured); a distilled
# one reports its own figure in summary.json (agreement_with_float).
MIN_INT8_AGREEMENT = 0.94
PROMPT = "Do you wish to run the custom code"


def _student(**values: object) -> StudentSettings:
    """The packaged student settings with `values` replaced."""
    return dataclasses.replace(group_settings("distill").student, **values)


@pytest.fixture(scope="module")
def bank_texts() -> list[str]:
    settings = small_settings()
    return list(load_task(settings.task, seed=0).test["text"])[:200]


@pytest.fixture(scope="module")
def minilm_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer student of the shipped MiniLM with a decisive head, exported."""
    settings = small_settings("model=minilm")
    teacher = build_classifier(
        settings.model, label_names=tuple(f"label{i}" for i in range(8)), seed=1
    )
    with torch.no_grad():
        teacher.classifier.weight.mul_(20.0)
    student = build_student(
        teacher, _student(num_layers=2, feed_forward_share=0.5)
    ).eval()
    out = tmp_path_factory.mktemp("student") / "student"
    return export_classifier(
        student, load_tokenizer(settings.model), out, max_length=32, quantize=True
    )


def test_narrow_student_keeps_the_most_important_feed_forward_units() -> None:
    settings = small_settings()
    teacher = build_classifier(settings.model, label_names=("a", "b"), seed=0)
    width = teacher.config.intermediate_size // 2
    student = build_student(
        teacher, _student(num_layers=1, layers=[1], feed_forward_share=0.5)
    )
    assert student.config.intermediate_size == width
    state = teacher.state_dict()
    keep = feed_forward_keep(state, layer=1, width=width)
    weight_in = state["bert.encoder.layer.1.intermediate.dense.weight"]
    importance = weight_in.norm(dim=1) * state[
        "bert.encoder.layer.1.output.dense.weight"
    ].norm(dim=0)
    assert set(keep.tolist()) == set(torch.topk(importance, width).indices.tolist())
    layer = student.bert.encoder.layer[0]
    assert torch.equal(layer.intermediate.dense.weight, weight_in[keep])
    assert torch.equal(
        layer.output.dense.weight,
        state["bert.encoder.layer.1.output.dense.weight"][:, keep],
    )
    # Attention and the head are the teacher's own.
    assert torch.equal(
        layer.attention.self.query.weight,
        state["bert.encoder.layer.1.attention.self.query.weight"],
    )
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_student_share_outside_the_teacher_is_refused(share: float) -> None:
    settings = small_settings()
    teacher = build_classifier(settings.model, label_names=("a", "b"), seed=0)
    with pytest.raises(FedmodelError, match="feed_forward_share"):
        build_student(teacher, _student(num_layers=1, feed_forward_share=share))


@pytest.mark.parametrize("share", ["0", "1.5"])
def test_a_share_outside_zero_to_one_is_refused_by_key(share: str) -> None:
    with pytest.raises(FedmodelError, match="distill.student.feed_forward_share"):
        small_settings(f"distill.student.feed_forward_share={share}")


def test_the_share_is_relative_to_the_teacher_and_keeps_one_unit() -> None:
    assert student_width(1536, _student(feed_forward_share=0.5)) == 768
    assert student_width(64, _student(feed_forward_share=0.5)) == 32
    assert student_width(64, _student(feed_forward_share=1.0)) == 64
    assert student_width(64, _student(feed_forward_share=0.001)) == 1


def test_bad_student_settings_name_the_key() -> None:
    with pytest.raises(FedmodelError, match="distill.student.max_length"):
        small_settings("distill.student.max_length=0")


def test_int8_graph_agrees_with_the_float_student_on_real_texts(
    minilm_student: Path, bank_texts: list[str]
) -> None:
    quantized = OnnxClassifier(minilm_student / QUANTIZED_ONNX_FILE)
    floating = OnnxClassifier(minilm_student / ONNX_FILE)
    assert (minilm_student / QUANTIZED_ONNX_FILE).stat().st_size < (
        minilm_student / ONNX_FILE
    ).stat().st_size
    same = predicted_labels(quantized, bank_texts) == predicted_labels(
        floating, bank_texts
    )
    assert same.mean() >= MIN_INT8_AGREEMENT
    # The float graph is PyTorch's model exactly; int8 is close, not equal.
    torch_logits = TorchClassifier(minilm_student).logits(bank_texts[:32])
    assert np.abs(floating.logits(bank_texts[:32]) - torch_logits).max() < 1e-4


def test_predict_serves_the_int8_graph_of_a_student_folder(
    minilm_student: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = load_classifier(minilm_student)
    assert isinstance(chosen, OnnxClassifier)
    assert chosen.session._model_path == str(minilm_student / QUANTIZED_ONNX_FILE)
    assert isinstance(load_classifier(minilm_student, runtime="torch"), TorchClassifier)
    code = run_command(
        [
            "predict",
            "--model",
            str(minilm_student),
            "--text",
            "my card is lost",
            "--format",
            "jsonl",
        ]
    )
    assert code == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["label"].startswith("label")


def test_predict_refuses_a_runtime_the_folder_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = small_settings()
    model = build_classifier(settings.model, label_names=("a", "b"), seed=0)
    out = export_classifier(
        model, load_tokenizer(settings.model), tmp_path / "m", max_length=16
    )
    assert isinstance(load_classifier(out), TorchClassifier)
    with pytest.raises(FedmodelError, match="no model.int8.onnx"):
        open_runtime(out, "onnx_int8")
    code = run_command(
        ["predict", "--model", str(out), "--runtime", "onnx_int8", "--text", "hello"]
    )
    assert code == 2
    assert "model.int8.onnx" in capsys.readouterr().err
    code = run_command(
        [
            "predict",
            "--model",
            str(out / ONNX_FILE),
            "--runtime",
            "torch",
            "--text",
            "hello",
        ]
    )
    assert code == 2
    # Before, a folder without its float graph was said to lack what only
    # students are exported with; every export holds model.onnx.
    (out / ONNX_FILE).unlink()
    code = run_command(
        ["predict", "--model", str(out), "--runtime", "onnx", "--text", "hello"]
    )
    assert code == 2
    assert (
        f"--model {out}: no {ONNX_FILE} in this folder for --runtime onnx; every "
        "export holds it: copy the whole exported folder or export the model "
        "again, or choose another runtime"
    ) in capsys.readouterr().err


def _run_plain(script: str, folder: Path) -> dict[str, list[list[float]]]:
    """Run `script` in a fresh interpreter with no stdin; return its JSON output."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert PROMPT not in done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, list[list[float]]] = json.loads(done.stdout.splitlines()[-1])
    return result


PLAIN_TRANSFORMERS = """
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer
folder = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(folder)
encoder = AutoModel.from_pretrained(folder).eval()
pooling = json.load(open(f"{folder}/1_Pooling/config.json"))
assert pooling["pooling_mode_mean_tokens"]
dense = load_file(f"{folder}/3_Dense/model.safetensors")
batch = tokenizer(["my card is lost", "refund please"], padding=True,
                  return_tensors="pt")
with torch.no_grad():
    hidden = encoder(**batch).last_hidden_state
mask = batch["attention_mask"].unsqueeze(-1).float()
pooled = (hidden * mask).sum(1) / mask.sum(1)
modules = [m["type"] for m in json.load(open(f"{folder}/modules.json"))]
if "sentence_transformers.models.Normalize" in modules:
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
logits = pooled @ dense["linear.weight"].T + dense["linear.bias"]
print(json.dumps({"logits": logits.tolist()}))
"""

SENTENCE_TRANSFORMERS = """
import json, sys
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
logits = model.encode(["my card is lost", "refund please"])
print(json.dumps({"logits": logits.tolist()}))
"""


@pytest.mark.parametrize("script", [PLAIN_TRANSFORMERS, SENTENCE_TRANSFORMERS])
def test_exported_folder_loads_without_custom_code_or_a_prompt(
    script: str, minilm_student: Path
) -> None:
    expected = TorchClassifier(minilm_student).logits(
        ["my card is lost", "refund please"]
    )
    logits = np.asarray(_run_plain(script, minilm_student)["logits"])
    assert np.abs(logits - expected).max() < 1e-4
