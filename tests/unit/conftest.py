"""Fixtures shared by unit tests: a site's records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from fedmodel.config import settings_from_dict
from fedmodel.data.tasks import load_task
from fedmodel.run.stop_request import STOP_REQUESTED
from tests.conftest import small_config


@pytest.fixture(scope="module")
def bank_rows() -> tuple[pd.DataFrame, list[str]]:
    """120 real Banking77 records (note, intent name), and the 77 label names."""
    settings = settings_from_dict(small_config())
    task = load_task(settings.task, seed=0)
    rows = task.train.select(range(120))
    names = list(task.label_names)
    frame = pd.DataFrame(
        {"note": rows["text"], "intent": [names[i] for i in rows["label"]]}
    )
    return frame, names


@pytest.fixture
def site_file(tmp_path: Path, bank_rows: tuple[pd.DataFrame, list[str]]) -> Path:
    """`bank_rows` as a site's CSV file."""
    path = tmp_path / "site.csv"
    bank_rows[0].to_csv(path, index=False)
    return path


@pytest.fixture
def no_stop_request() -> Iterator[None]:
    """The test starts, and leaves the process, with no stop requested."""
    STOP_REQUESTED.clear()
    yield
    STOP_REQUESTED.clear()
