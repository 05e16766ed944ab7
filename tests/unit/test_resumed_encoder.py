"""A resume keeps the run's encoder: its files by content, wherever they are."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.federation.server_setup import write_resolved_config
from fedmodel.run.folder_check import check_run_folder
from fedmodel.run.layout import ENCODER_IDENTITY, checkpoint_file
from fedmodel.run.resumed_encoder import record_encoder
from tests.conftest import small_settings

# What identifies an encoder folder (the checks of its contents come later).
ENCODER_FILES = {
    "config.json": '{"model_type": "bert"}',
    "model.safetensors": "weights",
    "vocab.txt": "[PAD]\n[UNK]\nhello\n",
    "README.md": "not part of what the encoder computes",
}


def _encoder(folder: Path) -> Path:
    folder.mkdir()
    for name, text in ENCODER_FILES.items():
        (folder / name).write_text(text)
    return folder


def _checkpointed_run(run: Path, encoder: Path) -> Path:
    """A run folder whose start loaded `encoder` and wrote a checkpoint."""
    settings = small_settings(f"model.path={encoder}")
    write_resolved_config(run, settings)
    record_encoder(run, settings)
    checkpoint_file(run).parent.mkdir()
    checkpoint_file(run).write_bytes(b"state")
    return run


def test_the_runs_encoder_moved_elsewhere_is_the_same(tmp_path: Path) -> None:
    run = _checkpointed_run(tmp_path / "run", _encoder(tmp_path / "model"))
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "model", moved)
    (moved / "README.md").write_text("another card")
    check_run_folder(run, small_settings("resume=true", f"model.path={moved}"))


@pytest.mark.parametrize("changed", ["vocab.txt", "model.safetensors", "config.json"])
def test_another_encoder_of_the_same_shape_is_refused(
    tmp_path: Path, changed: str
) -> None:
    run = _checkpointed_run(tmp_path / "run", _encoder(tmp_path / "model"))
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "model", other)
    (other / changed).write_text("another tokenizer's or model's")
    with pytest.raises(FedmodelError) as refused:
        check_run_folder(run, small_settings("resume=true", f"model.path={other}"))
    said = str(refused.value)
    assert f"model.path='{other}' (the run's: '{tmp_path / 'model'}')" in said
    assert ENCODER_IDENTITY in said and "start a new run in a new folder" in said


def test_an_older_run_or_one_without_a_checkpoint_loads_any_encoder(
    tmp_path: Path,
) -> None:
    other = _encoder(tmp_path / "other")
    (other / "vocab.txt").write_text("another vocabulary")
    resumed = small_settings("resume=true", f"model.path={other}")
    run = _checkpointed_run(tmp_path / "run", _encoder(tmp_path / "model"))
    (run / ENCODER_IDENTITY).unlink()  # written before the record was kept
    check_run_folder(run, resumed)  # checked by the weights' shapes then
    run = _checkpointed_run(tmp_path / "new", tmp_path / "model")
    checkpoint_file(run).unlink()  # no round finished: it starts at round 1
    check_run_folder(run, resumed)


@pytest.mark.parametrize(
    ("key", "value", "was"),
    [("pooling", "cls", "'mean'"), ("normalize", "true", "False")],
)
def test_a_resume_that_pools_the_features_otherwise_is_refused(
    tmp_path: Path, key: str, value: str, was: str
) -> None:
    encoder = _encoder(tmp_path / "model")
    run = _checkpointed_run(tmp_path / "run", encoder)
    resumed = small_settings("resume=true", f"model.path={encoder}")
    check_run_folder(run, resumed)  # the same pooling goes on
    with pytest.raises(FedmodelError, match=rf"model\.{key}=.* \(the run's: {was}\)"):
        check_run_folder(run, small_settings(*resumed_overrides(encoder, key, value)))


def resumed_overrides(encoder: Path, key: str, value: str) -> list[str]:
    return ["resume=true", f"model.path={encoder}", f"model.{key}={value}"]


def test_an_unreadable_encoder_record_is_named(tmp_path: Path) -> None:
    # A plain OSError traceback before; a missing record is an older run's.
    encoder = _encoder(tmp_path / "model")
    run = _checkpointed_run(tmp_path / "run", encoder)
    (run / ENCODER_IDENTITY).write_bytes(b"\xff\xfe not text")
    with pytest.raises(FedmodelError, match=f"{ENCODER_IDENTITY}.*not UTF-8"):
        check_run_folder(run, small_settings("resume=true", f"model.path={encoder}"))
