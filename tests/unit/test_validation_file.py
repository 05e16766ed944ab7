"""`task.validation_file`: the server's own labelled records for a files task."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fedmodel.config import TaskSettings, compose_config, settings_from_dict
from fedmodel.data.label_warnings import warn_labels
from fedmodel.data.shared_texts import warn_shared_texts
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from tests.conftest import group_settings
from tests.unit.test_data_files import NORMALIZE


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


def test_labels_only_the_validation_file_has_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A typo in the server's file made a class of the model no site trains,
    # named only by a count in "head initialised from the 3 label names".
    held = _csv(tmp_path / "held.csv", [("lovely", "pos"), ("grim", "negative")])
    data = load_task(_task(tmp_path, held), seed=0)
    assert data.label_names == ("neg", "negative", "pos")
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_labels(data)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned == (
        "1 label of task.validation_file no site's file has, so no site trains "
        "it, yet the model and its export hold it as a class: ['negative']. If "
        "it is a site label written another way, write it as the sites' files "
        "do; if not, add site records of it or leave it out of the file"
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_labels(
            load_task(_task(tmp_path, _csv(held, [("x", "pos"), ("y", "neg")])), seed=0)
        )
    assert not caplog.records


def test_test_records_the_validation_file_holds_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A validation file cut from the test file (a copy, not the file itself,
    # which is refused) lets the test split choose, and nothing said so.
    held = _csv(tmp_path / "held.csv", [("good", "pos"), ("grim", "neg")])
    task = _task(tmp_path, held)
    data = load_task(task, seed=0)
    run = settings_from_dict(compose_config(["task=files", "num_clients=1"]))
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        warn_shared_texts(replace(run, task=task), data, normalize=NORMALIZE)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned == (
        f"1 of the 2 records of task.test_file ({tmp_path / 'test.csv'}) has a "
        f"text that task.validation_file ({held}) holds too: the server fitted "
        "its start and chose its round on them, and the test split must choose "
        "nothing. Take them out of one of the two"
    )
