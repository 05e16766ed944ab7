"""Shared integration fixtures: a loopback federation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.loopback import Loopback


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[Loopback]:
    """A loopback federation in `tmp_path`; every process it started is stopped."""
    federation = Loopback(tmp_path)
    try:
        yield federation
    finally:
        federation.stop()
