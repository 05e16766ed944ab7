"""Count the files a reader is asked for, to test how often a start reads each."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def counted_reads(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, reader: str
) -> list[Path]:
    """The paths `module.<reader>` is called with from now on (it still reads)."""
    read = getattr(module, reader)
    paths: list[Path] = []

    def counted(path: Path, **kwargs: Any) -> Any:
        paths.append(path)
        return read(path, **kwargs)

    monkeypatch.setattr(module, reader, counted)
    return paths
