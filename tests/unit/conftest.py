"""Fixtures shared by unit tests: fedmodel's logging in-process, a site's records."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from fedmodel.config import settings_from_dict
from fedmodel.data import load_task
from fedmodel.run.console import CHATTY_LOGGERS, VERBOSE_ENV, close_log_file
from tests.conftest import small_config

ENVIRONMENT = (
    VERBOSE_ENV,
    "HF_DATASETS_DISABLE_PROGRESS_BARS",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HYDRA_FULL_ERROR",
)


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what `setup_logging` (and `fedmodel simulate`) change in the process."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with logging_restored():
        yield


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Put fedmodel's and the libraries' loggers back as they were.

    For module fixtures that run a round loop: the ClientApp calls
    `setup_logging`, which stops fedmodel's lines reaching `caplog` in later
    modules.
    """
    loggers = [logging.getLogger(n) for n in ("fedmodel", *CHATTY_LOGGERS)]
    saved = [
        (lg, lg.propagate, lg.level, [(h, list(h.filters)) for h in lg.handlers])
        for lg in loggers
    ]
    root_level = logging.getLogger().level
    try:
        yield
    finally:
        close_log_file()
        logging.getLogger().setLevel(root_level)
        for logger, propagate, level, handlers in saved:
            logger.propagate = propagate
            logger.setLevel(level)
            for handler, filters in handlers:
                handler.filters = filters


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
