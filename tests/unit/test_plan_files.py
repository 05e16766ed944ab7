"""What a privacy plan reads of the task's files, before torch loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.research.plan_files import read_plan_files
from tests.conftest import small_settings


def _files_task(
    tmp_path: Path, *overrides: str, train: str = "missing.csv"
) -> list[str]:
    """A files task whose one train file is `train` (by default, missing)."""
    (tmp_path / "test.csv").write_text("text,label\nhu,a\nhy,b\n")
    return [
        "task=files",
        f"task.train_files=[{tmp_path}/{train}]",
        f"task.test_file={tmp_path}/test.csv",
        *overrides,
    ]


def test_a_client_level_plan_keeps_the_records_it_deals(tmp_path: Path) -> None:
    # Its one plan counts clients, but the records are dealt all the same
    # (`plan_run`), to refuse a partition the run refuses.
    (tmp_path / "site.csv").write_text("text,label\nhi,a\nho,b\n")
    settings = small_settings(
        *_files_task(tmp_path, "privacy=central", train="site.csv")
    )
    assert len(read_plan_files(settings).records.train) == 2


def _undescribed(tmp_path: Path, *overrides: str) -> RunSettings:
    """The bank task, whose loader reads no descriptions, with 1 of 77 described."""
    path = tmp_path / "labels.csv"
    path.write_text("label,description\nactivate_my_card,a card to activate\n")
    return small_settings(f"task.label_descriptions={path}", *overrides)


@pytest.mark.parametrize("privacy", ["privacy=dpsgd", "privacy=central"])
def test_a_label_without_its_description_is_refused_in_every_mode(
    tmp_path: Path, privacy: str
) -> None:
    # As `fedmodel simulate` refuses it (`check_described_labels`); before,
    # the plan was shown.
    said = r"labels\.csv has no description of the labels \['Refund_not_showing_up'"
    with pytest.raises(FedmodelError, match=said):
        read_plan_files(_undescribed(tmp_path, privacy))


def test_a_resumed_run_needs_no_description(tmp_path: Path) -> None:
    # Its head starts from its checkpoint: `fedmodel simulate` reads none.
    assert read_plan_files(_undescribed(tmp_path, "resume=true")).records is not None


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


@pytest.mark.parametrize("privacy", ["privacy=dpsgd", "privacy=central"])
def test_a_missing_train_file_is_refused_with_the_runs_message(
    tmp_path: Path, privacy: str
) -> None:
    settings = small_settings(*_files_task(tmp_path, privacy))
    with pytest.raises(FedmodelError, match=r"missing\.csv does not exist"):
        read_plan_files(settings)
