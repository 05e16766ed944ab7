"""What a privacy plan reads of the task's files, before torch loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.research.plan_files import read_plan_files
from tests.conftest import small_settings


def _files_task(tmp_path: Path, *overrides: str) -> list[str]:
    """A files task whose one train file is missing."""
    (tmp_path / "test.csv").write_text("text,label\nhu,a\nhy,b\n")
    return [
        "task=files",
        f"task.train_files=[{tmp_path}/missing.csv]",
        f"task.test_file={tmp_path}/test.csv",
        *overrides,
    ]


def test_a_client_level_plan_reads_no_client_record(tmp_path: Path) -> None:
    # Its one plan counts clients: a train file it never reads is not refused.
    settings = small_settings(*_files_task(tmp_path, "privacy=central"))
    assert read_plan_files(settings).records is None


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("federation=deployment", "federation=deployment has none"),
        ("privacy=off", "there is no budget to plan"),
    ],
)
def test_a_run_the_plan_cannot_plan_is_refused_before_its_files(
    tmp_path: Path, mode: str, said: str
) -> None:
    settings = small_settings(*_files_task(tmp_path, mode))
    with pytest.raises(FedmodelError, match=said):
        read_plan_files(settings)


def test_a_missing_train_file_is_refused_with_the_runs_message(
    tmp_path: Path,
) -> None:
    settings = small_settings(*_files_task(tmp_path))
    with pytest.raises(FedmodelError, match=r"missing\.csv does not exist"):
        read_plan_files(settings)
