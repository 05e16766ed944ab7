"""`task.validation_file`: the server's own labelled records for a files task."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.config import TaskSettings
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from tests.conftest import group_settings


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["text,label", *(f"{text},{label}" for text, label in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _task(tmp_path: Path, validation: Path | None) -> TaskSettings:
    site = _csv(tmp_path / "site.csv", [("fine day", "pos"), ("awful", "neg")])
    test = _csv(tmp_path / "test.csv", [("good", "pos"), ("bad", "neg")])
    settings: TaskSettings = group_settings(
        "task",
        "files",
        train_files=[str(site)],
        test_file=str(test),
        validation_file=None if validation is None else str(validation),
    )
    return settings


def test_the_validation_file_is_the_transfer_split(tmp_path: Path) -> None:
    held = _csv(tmp_path / "held.csv", [("lovely", "pos"), ("grim", "neg")])
    data = load_task(_task(tmp_path, held), seed=0)
    assert data.transfer is not None
    assert data.transfer["text"] == ["lovely", "grim"]
    assert data.transfer["label"] == [1, 0]
    assert set(data.transfer["text"]).isdisjoint(data.test["text"])


def test_without_a_validation_file_the_server_holds_no_records(tmp_path: Path) -> None:
    assert load_task(_task(tmp_path, None), seed=0).transfer is None


def test_a_missing_validation_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(FedmodelError, match="task.validation_file"):
        load_task(_task(tmp_path, tmp_path / "nope.csv"), seed=0)
