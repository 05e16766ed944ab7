"""An exported folder that is incomplete or inconsistent is refused at load."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tokenizers
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from fedmodel.cli.main import run_command
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.serve import exported_folder, inference
from fedmodel.serve.export import QUANTIZED_ONNX_FILE, export_classifier
from fedmodel.serve.exported_folder import CONFIG_FILE, read_exported_folder
from fedmodel.serve.graph_tokenizer import GraphTokenizer
from tests.conftest import small_settings

LABELS = ("card", "refund", "top_up")
MAX_LENGTH = 24
# Short, empty, blank, accented and emoji, CJK, and past MAX_LENGTH.
TEXTS = [
    "my card is lost",
    "",
    "   ",
    "Où est mon virement?? 😊",
    "银行卡 top-up FAILED again!!!",
    "word " * 300,
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier exported with both graphs, from a tokenizer left padding."""
    settings = small_settings()
    model = build_classifier(settings.model, label_names=LABELS, seed=3)
    tokenizer = load_tokenizer(settings.model)
    # State a shipped tokenizer.json or an earlier call can leave behind.
    tokenizer.backend_tokenizer.enable_truncation(max_length=128)
    tokenizer.backend_tokenizer.enable_padding(length=128)
    out = tmp_path_factory.mktemp("exported") / "model"
    return export_classifier(
        model, tokenizer, out, max_length=MAX_LENGTH, quantize=True
    )


@pytest.fixture
def copy(exported: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported, tmp_path / "model"))


def _predict_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert run_command(["predict", *argv, "--text", "my card"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _edit_config(folder: Path, **values: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **values}))


def test_weights_without_the_head_are_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = copy / "model.safetensors"
    kept = {k: v for k, v in load_file(weights).items() if "classifier." not in k}
    save_file(kept, weights, metadata={"format": "pt"})
    err = _predict_error(capsys, "--model", str(copy), "--runtime", "torch")
    assert f"{weights} lacks classifier.bias, classifier.weight" in err
    assert "export the model again" in err


@pytest.mark.parametrize("runtime", ["onnx", "onnx_int8"])
@pytest.mark.parametrize("labels", [2, 5])
def test_a_graph_scoring_other_labels_than_config_names_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str], runtime: str, labels: int
) -> None:
    _edit_config(copy, id2label={str(i): f"l{i}" for i in range(labels)})
    err = _predict_error(capsys, "--model", str(copy), "--runtime", runtime)
    assert f"the graph scores 3 labels but {copy / 'config.json'} names" in err
    assert f"names {labels} in id2label" in err


def test_a_damaged_graph_in_a_folder_is_named_with_what_to_do(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "--model DIR/model.int8.onnx: not a loadable ONNX model (...);
    # point at a model.onnx written by fedmodel", for a --model DIR that
    # named no file, and advice that left the damaged graph in place.
    graph = copy / QUANTIZED_ONNX_FILE
    graph.write_text("cut short")
    err = _predict_error(capsys, "--model", str(copy))
    assert f"--model: {graph} is not a loadable ONNX model (" in err
    assert err.rstrip().endswith(
        "copy it again from the folder fedmodel exported, or export the model again"
    )


def test_a_folder_without_its_tokenizer_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "tokenizer.json").unlink()
    err = _predict_error(capsys, "--model", str(copy))
    assert f"{copy}: no tokenizer.json in this folder" in err


@pytest.mark.parametrize("runtime", ["auto", "onnx", "torch"])
def test_a_folder_without_its_tokenizer_config_is_refused(
    copy: Path, runtime: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # It holds the length the model was trained at; without it both runtimes
    # read a long text up to 512 tokens and labelled it otherwise, silently.
    (copy / "tokenizer_config.json").unlink()
    err = _predict_error(capsys, "--model", str(copy), "--runtime", runtime)
    assert f"--model {copy}: no tokenizer_config.json in this folder" in err
    assert "(model_max_length) is unknown; copy the whole exported folder" in err


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_a_tokenizer_json_tokenizers_cannot_parse_is_named(
    copy: Path, capsys: pytest.CaptureFixture[str], runtime: str
) -> None:
    # A stub, as from another tokenizers version. Before: KeyError 'added_tokens'
    # (torch), or "no tokenizer could be loaded from this folder" (onnx).
    (copy / "tokenizer.json").write_text(json.dumps({"version": "1.0"}))
    err = _predict_error(capsys, "--model", str(copy), "--runtime", runtime)
    assert (
        f"--model {copy}: tokenizer.json cannot be loaded by tokenizers "
        f"{tokenizers.__version__} (Model missing."
    ) in err
    assert "re-export it or use the version that wrote it" in err


def test_a_tokenizer_json_transformers_cannot_read_is_named(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # tokenizers parses it; transformers reads the file itself and, before,
    # ended with KeyError: 'added_tokens'.
    saved = json.loads((copy / "tokenizer.json").read_text())
    del saved["added_tokens"]
    (copy / "tokenizer.json").write_text(json.dumps(saved))
    err = _predict_error(capsys, "--model", str(copy), "--runtime", "torch")
    assert (
        f"--model {copy}: no tokenizer could be loaded (KeyError: 'added_tokens')"
    ) in err


def test_a_tokenizer_of_another_vocabulary_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_config(copy, vocab_size=17)
    err = _predict_error(capsys, "--model", str(copy), "--runtime", "onnx")
    assert "but config.json has vocab_size 17" in err


def test_a_tokenizer_without_a_limit_is_cut_at_the_model_positions(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenizer_config = json.loads((copy / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = int(1e30)
    (copy / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    classifier = inference.load_classifier(copy, runtime="onnx")
    positions = json.loads((copy / "config.json").read_text())
    assert classifier.logits(["word " * 3000]).shape == (1, 3)
    assert classifier.max_length == positions["max_position_embeddings"]


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_a_load_reads_config_json_once(
    exported: Path, runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Labels, vocabulary size, position limit and pad id: one read for all.
    reads: list[str] = []
    read = exported_folder._json_object_of

    def counted(named: str, path: Path) -> dict[str, object]:
        reads.append(path.name)
        return read(named, path)

    monkeypatch.setattr(exported_folder, "_json_object_of", counted)
    classifier = inference.load_classifier(exported, runtime=runtime)
    assert classifier.label_names == LABELS
    assert reads.count(CONFIG_FILE) == 1


def test_exported_tokenizer_json_truncates_at_the_export_length(
    exported: Path,
) -> None:
    tokenizer = Tokenizer.from_file(str(exported / "tokenizer.json"))
    assert tokenizer.truncation is not None
    assert tokenizer.truncation["max_length"] == MAX_LENGTH
    assert tokenizer.padding is None


def test_exported_files_are_readable_like_config(exported: Path) -> None:
    mode = stat.S_IMODE((exported / "config.json").stat().st_mode)
    files = [path for path in exported.rglob("*") if path.is_file()]
    assert exported / "model.safetensors" in files
    assert exported / QUANTIZED_ONNX_FILE in files
    assert {path: stat.S_IMODE(path.stat().st_mode) for path in files} == {
        path: mode for path in files
    }


def test_top_k_is_checked_before_the_model_loads(
    exported: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("loaded the model before checking --top-k")

    monkeypatch.setattr(inference, "load_classifier", never)
    err = _predict_error(capsys, "--model", str(exported), "--top-k", "0")
    assert "--top-k must be >= 1, got 0" in err


def test_predict_and_the_onnx_runtime_import_neither_torch_nor_the_data_libraries() -> (
    None
):
    heavy = ["torch", "datasets", "pandas", "fedmodel.model.classifier"]
    probe = (
        "import sys, fedmodel.cli.predict, fedmodel.serve.inference, "
        "fedmodel.serve.onnx_runtime; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("stale", [False, True], ids=["as-exported", "stale-json"])
def test_graph_inputs_equal_those_of_the_folders_hf_tokenizer(
    copy: Path, stale: bool
) -> None:
    if stale:
        # What an older export left in tokenizer.json: fixed padding to 128.
        saved = Tokenizer.from_file(str(copy / "tokenizer.json"))
        saved.enable_truncation(max_length=128)
        saved.enable_padding(length=128)
        saved.save(str(copy / "tokenizer.json"))
    hf = AutoTokenizer.from_pretrained(copy)
    positions = json.loads((copy / "config.json").read_text())
    limit = min(hf.model_max_length, positions["max_position_embeddings"])
    graph = GraphTokenizer(read_exported_folder(copy))
    for batch in (TEXTS, TEXTS[:1], TEXTS[1:3], TEXTS[-1:]):
        expected = hf(
            batch, padding=True, truncation=True, max_length=limit, return_tensors="np"
        )
        inputs = graph(batch)
        assert list(inputs) == ["input_ids", "attention_mask"]
        for name, values in inputs.items():
            assert values.dtype == np.int64
            np.testing.assert_array_equal(values, expected[name])
    assert graph(TEXTS[-1:])["input_ids"].shape == (1, MAX_LENGTH)


def test_an_onnx_predict_imports_neither_torch_nor_transformers(
    exported: Path,
) -> None:
    probe = (
        "import json, sys; from fedmodel.cli.main import run_command; "
        f"code = run_command(['predict', '--model', {str(exported)!r}, "
        "'--runtime', 'onnx', '--text', 'my card is lost', '--format', 'jsonl']); "
        "print(json.dumps([code, [m for m in ('torch', 'transformers') "
        "if m in sys.modules]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    label_line, result_line = done.stdout.strip().splitlines()
    assert json.loads(label_line)["label"] in LABELS
    assert json.loads(result_line) == [0, []], done.stdout + done.stderr
