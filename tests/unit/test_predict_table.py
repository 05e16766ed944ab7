"""`fedmodel predict`'s table shows texts and labels as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.serve.export import export_classifier
from tests.conftest import small_settings

LABELS = ("feces, animals, pets", "refund [fees]", "news & press")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = small_settings()
    model = build_classifier(settings.model, label_names=LABELS, seed=3)
    out = tmp_path_factory.mktemp("exported") / "model"
    return export_classifier(model, load_tokenizer(settings.model), out, max_length=32)


def test_table_keeps_brackets_and_puts_each_next_best_label_on_its_own_line(
    exported: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: one table row a line
    text = "see [link] about my [b]card[/b]"
    argv = ["predict", "--model", str(exported), "--text", text, "--runtime", "torch"]
    assert run_command(argv) == 0
    out = capsys.readouterr().out
    assert text in out
    for label in LABELS:
        assert label in out
    # One next best label a line: joined by ", " ("news & press 0.21, feces,
    # animals, pets 0.20") the label's own commas blur where one ends.
    next_best = [line.split("│")[4].strip() for line in out.splitlines()[3:-1]]
    assert len([cell for cell in next_best if cell]) == 2, next_best
