"""`benchmarks/head_features.py` keeps its feature cache in the repository."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_feature_cache_is_the_repositorys_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: `outputs/bench-rule` under the folder a benchmark was run from,
    # so a run from another folder embedded every task again into a new cache.
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.delitem(sys.modules, "head_features", raising=False)
    head_features = importlib.import_module("head_features")
    assert head_features.CACHE == REPO / "outputs" / "bench-rule"
