"""The test split chooses nothing: a label only the test file holds is no class."""

from __future__ import annotations

import math
from pathlib import Path

from fedmodel.data.tasks import load_task
from fedmodel.training.global_model import GlobalModel
from tests.conftest import small_settings


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "text,label\n" + "".join(f"{text},{label}\n" for text, label in rows),
        encoding="utf-8",
    )
    return path


def test_a_label_only_the_test_file_holds_is_no_class_and_scores_as_errors(
    tmp_path: Path,
) -> None:
    # Before: sites of a, b and c with a test file of a, b, c and z gave the
    # model, its head and the export's id2label a class z that the test
    # split alone chose.
    sites = [
        _csv(tmp_path / "s0.csv", [("fine day", "a"), ("awful", "b"), ("meh", "c")]),
        _csv(tmp_path / "s1.csv", [("rainy", "b"), ("ok", "c"), ("bright", "a")]),
    ]
    rows = [("good", "a"), ("bad", "b"), ("so so", "c"), ("odd", "z"), ("new", "z")]
    test = _csv(tmp_path / "test.csv", rows)
    settings = small_settings(
        "task=files",
        f"task.train_files=[{sites[0]},{sites[1]}]",
        f"task.test_file={test}",
        "num_clients=2",
    )
    data = load_task(settings.task, seed=0)
    assert data.label_names == ("a", "b", "c")
    # Every test record stays, z's by an id past the model's classes.
    assert data.test["label"] == [0, 1, 2, 3, 3]
    model = GlobalModel(settings, label_names=data.label_names, test=data.test)
    assert model.classifier.config.id2label == {0: "a", 1: "b", 2: "c"}
    result = model.evaluate()
    # z's 2 records count, as errors: the model never answers z, so at
    # most the other 3 of the 5 are right; the loss is over those 3.
    assert result.num_examples == 5
    assert int(result.predicted.max()) < 3
    assert result.accuracy <= 3 / 5
    assert math.isfinite(result.loss)
