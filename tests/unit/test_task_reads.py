"""The task's files: read once a process for each version of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.data import files
from fedmodel.data.clients import client_data_read, load_client_data
from fedmodel.data.file_digest import file_sha256
from fedmodel.data.readable_records import check_readable_records
from fedmodel.data.tasks import load_task
from tests.unit.counted_reads import counted_reads


def _write(path: Path, texts: list[str]) -> None:
    labels = ["yes" if i % 2 else "no" for i in range(len(texts))]
    lines = [f"{text},{label}" for text, label in zip(texts, labels, strict=True)]
    path.write_text("text,label\n" + "\n".join(lines) + "\n")


def _files_task(tmp_path: Path) -> tuple[RunSettings, list[Path]]:
    """Two sites' files, a test and a validation file, and a run's settings."""
    paths = [tmp_path / name for name in ("a.csv", "b.csv", "test.csv", "val.csv")]
    for path in paths:
        _write(path, [f"{path.stem} note {i}" for i in range(6)])
    sites, test, validation = paths[:2], paths[2], paths[3]
    settings = settings_from_dict(
        compose_config(
            [
                "task=files",
                "model=tiny",
                "distill=off",
                f"task.train_files=[{sites[0]},{sites[1]}]",
                f"task.test_file={test}",
                f"task.validation_file={validation}",
                f"run_dir={tmp_path / 'run'}",
            ]
        )
    )
    return settings, paths


def test_a_start_reads_each_task_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `fedmodel simulate` reads the clients' records before Flower starts;
    # its ServerApp, in the same process, then loads the task as below.
    settings, paths = _files_task(tmp_path)
    reads = counted_reads(monkeypatch, files, "read_table")
    check_readable_records(settings)
    task = load_task(settings.task, seed=settings.seed)
    assert len(task.train) == 12 and len(task.test) == 6
    assert task.transfer is not None and len(task.transfer) == 6
    for client in range(settings.num_clients):
        load_client_data(settings, client)
    assert sorted(reads) == sorted(paths)


def test_a_task_file_changed_since_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, paths = _files_task(tmp_path)
    check_readable_records(settings)
    reads = counted_reads(monkeypatch, files, "read_table")
    _write(paths[0], ["a new note", "another new note"])
    later = paths[0].stat().st_mtime_ns + 1_000_000_000
    os.utime(paths[0], ns=(later, later))
    task = load_task(settings.task, seed=settings.seed)
    assert "a new note" in task.train["text"]
    assert "a note 5" not in task.train["text"]
    train, val, _ = load_client_data(settings, 0)  # dealt again, from that read
    assert sorted([*train["text"], *val["text"]]) == ["a new note", "another new note"]
    assert sorted(reads) == sorted(paths)


def test_a_clients_files_are_hashed_in_the_read_its_records_come_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A simulated client compares these with the run's record: a hash of a
    # read of its own, after a rewrite, would pass records of other bytes.
    settings, paths = _files_task(tmp_path)
    parsed = {str(path): file_sha256(path) for path in paths}
    read = files.read_table

    def read_then_rewrite(path: Path, **kwargs: Any) -> Any:
        table = read(path, **kwargs)
        _write(path, ["rewritten once read", "and again"])
        return table

    monkeypatch.setattr(files, "read_table", read_then_rewrite)
    taken = client_data_read(settings, 0)
    assert dict(taken.file_sha256) == parsed
    assert all(file_sha256(path) != parsed[str(path)] for path in paths)
    assert "rewritten once read" not in [*taken.train["text"], *taken.val["text"]]


def test_a_sites_own_file_is_read_without_hashing_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a simulated client compares its files' hashes with the run's; a
    # deployed site's file is compared with nothing, so its bytes (which can
    # be many megabytes, every round in lora and full mode) are not hashed.
    settings, paths = _files_task(tmp_path)
    read = files.read_table
    hashers: dict[Path, object] = {}

    def noted(path: Path, **kwargs: Any) -> Any:
        hashers[path] = kwargs.get("bytes_read")
        return read(path, **kwargs)

    monkeypatch.setattr(files, "read_table", noted)
    site = files.load_site_file(
        paths[0], task=settings.task, label_names=("no", "yes"), key="data-file"
    )
    assert len(site) == 6 and hashers == {paths[0]: None}
    hashers.clear()
    assert dict(files.load_files(settings.task, seed=0).file_sha256) == {
        str(path): file_sha256(path) for path in paths
    }
    assert all(callable(hasher) for hasher in hashers.values()) and len(hashers) == 4
