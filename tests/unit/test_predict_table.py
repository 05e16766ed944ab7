"""`fedmodel predict`'s table shows texts and labels as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.cli.main import run_command
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.serve.export import export_classifier
from tests.conftest import small_settings

LABELS = ("feces, animals, pets", "refund [fees]", "news & press")


# One word wider than a label column at 80 columns beside a long text, as
# Banking77's `getting_virtual_card` is in the next best column.
ONE_WORD_LABELS = ("getting_virtual_card_now", "passcode_forgotten_again", "x" * 24)
LONG_TEXT = "I still have not received my new card and it has been two weeks now"


def _export(folder: Path, labels: tuple[str, ...]) -> Path:
    settings = small_settings()
    model = build_classifier(settings.model, label_names=labels, seed=3)
    out = folder / "model"
    return export_classifier(model, load_tokenizer(settings.model), out, max_length=32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("exported"), LABELS)


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


def test_a_label_wider_than_its_column_is_folded_not_cut(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: at 80 columns a one-word label wider than its column was cut
    # with an ellipsis ("getting_virtual_ca…"), naming no label there is.
    monkeypatch.setenv("COLUMNS", "80")
    exported = _export(tmp_path, ONE_WORD_LABELS)
    argv = ["predict", "--model", str(exported), "--text", LONG_TEXT]
    assert run_command([*argv, "--runtime", "torch"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    rows = [line.split("│") for line in out.splitlines()[3:-1]]
    # A folded label reads whole with each column's lines joined.
    shown = ["".join(cells[column].strip() for cells in rows) for column in (2, 4)]
    for label in ONE_WORD_LABELS:
        assert any(label in column for column in shown), out
