"""Fixtures for the unit tests that set up fedmodel's logging in-process."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from fedmodel.run.console import CHATTY_LOGGERS, VERBOSE_ENV, close_log_file

ENVIRONMENT = (VERBOSE_ENV, "HF_DATASETS_DISABLE_PROGRESS_BARS", "HYDRA_FULL_ERROR")


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what `setup_logging` (and `fedmodel simulate`) change in the process."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    loggers = [logging.getLogger(n) for n in ("fedmodel", *CHATTY_LOGGERS)]
    saved = [
        (lg, lg.propagate, lg.level, [(h, list(h.filters)) for h in lg.handlers])
        for lg in loggers
    ]
    root_level = logging.getLogger().level
    yield
    close_log_file()
    logging.getLogger().setLevel(root_level)
    for logger, propagate, level, handlers in saved:
        logger.propagate = propagate
        logger.setLevel(level)
        for handler, filters in handlers:
            handler.filters = filters
