"""Run-folder outputs: rounds, summaries and the progress plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np

from fedmodel.run.metrics import (
    append_round,
    archive_rounds,
    plot_progress,
    read_rounds,
    write_json,
)


def _round(number: int, epsilon: float | None) -> dict[str, object]:
    return {
        "round": number,
        "accuracy": 0.5 + number / 10,
        "epsilon_max": epsilon,
        "epsilon_mean": epsilon,
    }


def test_rounds_append_and_read_back(tmp_path: Path) -> None:
    append_round(tmp_path, _round(1, 1.5))
    append_round(tmp_path, _round(2, float("nan")))
    rounds = read_rounds(tmp_path)
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[1]["epsilon_max"] is None  # NaN is not JSON: written as null


def test_a_new_run_keeps_the_earlier_rounds_aside(tmp_path: Path) -> None:
    assert archive_rounds(tmp_path) is None
    append_round(tmp_path, _round(1, 1.0))
    first = archive_rounds(tmp_path)
    append_round(tmp_path, _round(1, 2.0))
    second = archive_rounds(tmp_path)
    assert first is not None and second is not None
    assert (first.name, second.name) == ("metrics.1.jsonl", "metrics.2.jsonl")
    assert read_rounds(tmp_path) == []
    assert json.loads(first.read_text())["epsilon_max"] == 1.0


def test_summary_is_written_without_nan_or_temp_files(tmp_path: Path) -> None:
    write_json(tmp_path / "summary.json", {"loss": float("inf"), "ok": [1.0]})
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "loss": None,
        "ok": [1.0],
    }
    assert not list(tmp_path.glob("*.tmp"))


def test_progress_plot_with_and_without_privacy(tmp_path: Path) -> None:
    for number in (1, 2, 3):
        append_round(tmp_path, _round(number, number * 1.0))
    for folder in (tmp_path, tmp_path / "off"):
        if folder.name == "off":
            folder.mkdir()
            append_round(folder, _round(1, None))
        image = matplotlib.image.imread(plot_progress(folder))
        # A real picture, not an empty canvas: several distinct colours.
        height, width, _ = image.shape
        assert height > 100 and width > 100
        assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 3
