"""`fedmodel audit` of a run whose model/ is damaged: refused as predict refuses it.

Before, the audit loaded the folder with plain transformers: without its
tokenizer.json it scored every text as unknown tokens and wrote audit.json
(exit 0), and a damaged file ended in a library's traceback.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fedmodel.cli.main import run_command
from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data.tasks import load_task
from fedmodel.model.load import build_classifier, load_tokenizer, save_pretrained
from fedmodel.run.layout import AUDIT_FILE, RESOLVED_CONFIG, SUMMARY_FILE, TEACHER_DIR

# One client with held-out records, so the audit reaches the model.
RUN = ["model=tiny", "num_clients=1", "task.max_train_examples=40"]
RUN += ["task.val_fraction=0.5"]
KEY = "the run's model folder"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files `fedmodel audit` reads from a finished run, with a real model/."""
    run = tmp_path_factory.mktemp("finished") / "run"
    raw = compose_config(RUN)
    settings = settings_from_dict(raw)
    labels = load_task(settings.task, seed=settings.seed).label_names
    model = build_classifier(settings.model, label_names=labels, seed=0)
    save_pretrained(model, load_tokenizer(settings.model), run / TEACHER_DIR)
    (run / RESOLVED_CONFIG).write_text(yaml.safe_dump(raw), encoding="utf-8")
    (run / SUMMARY_FILE).write_text("{}", encoding="utf-8")
    return run


def _truncate(path: Path) -> None:
    path.write_bytes(b"")


def _stub(path: Path) -> None:
    path.write_text(json.dumps({"version": "1.0"}), encoding="utf-8")


def _not_json(path: Path) -> None:
    path.write_text("{not json", encoding="utf-8")


FAULTS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "no tokenizer.json": (
        "tokenizer.json",
        Path.unlink,
        "{model}: no tokenizer.json in this folder, so its texts cannot be "
        "tokenized as in training",
    ),
    "no weights": (
        "model.safetensors",
        Path.unlink,
        "{model}: no model.safetensors in this folder; copy the whole exported "
        "folder or export the model again",
    ),
    "empty weights": (
        "model.safetensors",
        _truncate,
        "{model}: {dir}/model.safetensors is damaged (",
    ),
    "config not JSON": (
        "config.json",
        _not_json,
        "{model}: {dir}/config.json cannot be read (",
    ),
    "tokenizer.json stub": (
        "tokenizer.json",
        _stub,
        "{model}: tokenizer.json cannot be loaded by tokenizers ",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_damaged_model_folder_is_refused_and_nothing_is_written(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: str,
) -> None:
    run = Path(shutil.copytree(finished, tmp_path / "run"))
    name, damage, said = FAULTS[fault]
    damage(run / TEACHER_DIR / name)
    assert run_command(["audit", str(run)]) == 2
    err = capsys.readouterr().err
    folder = run / TEACHER_DIR
    expected = said.format(model=f"{KEY} {folder}", dir=folder)
    assert f"fedmodel audit: error: {expected}" in err
    assert "Traceback" not in err
    assert not (run / AUDIT_FILE).exists()


def test_the_model_class_is_fedmodels_own_so_classifier_py_is_not_needed(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As predict: the weights load into fedmodel's class, not the folder's copy.
    run = Path(shutil.copytree(finished, tmp_path / "run"))
    (run / TEACHER_DIR / "classifier.py").unlink()
    assert run_command(["audit", str(run)]) == 0, capsys.readouterr().err
    assert json.loads((run / AUDIT_FILE).read_text())["records"]["auc"] is not None
