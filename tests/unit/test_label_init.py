"""The head's public start: label-name embeddings, no record read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from fedmodel.config import settings_from_dict
from fedmodel.data.label_descriptions import described_labels, read_descriptions
from fedmodel.data.splits import build_split
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.model import label_init
from fedmodel.model.label_init import (
    LABEL_INIT_SCALE,
    init_head_from_label_names,
    label_text,
    wordless_label,
)
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.training import warm_start
from fedmodel.training.warm_start import public_start
from tests.conftest import small_config, small_settings

LABELS = ("card_arrival", "lost or stolen card", "Diseases of the circulatory system")


def test_label_text_reads_identifiers_as_words() -> None:
    assert label_text("card_arrival") == "card arrival"
    assert label_text(" top-up  failed ") == "top up failed"


def test_head_rows_are_scaled_unit_label_embeddings() -> None:
    settings = settings_from_dict(small_config())
    model = build_classifier(settings.model, label_names=LABELS, seed=0)
    init_head_from_label_names(model, settings=settings.model, label_names=LABELS)
    weight = model.classifier.weight.detach()
    torch.testing.assert_close(
        weight.norm(dim=1), torch.full((len(LABELS),), LABEL_INIT_SCALE)
    )
    assert torch.count_nonzero(model.classifier.bias) == 0
    # Each label's own name scores highest for that label (a zero-shot start).
    tokenizer = load_tokenizer(settings.model)
    encoded = tokenizer(
        [label_text(n) for n in LABELS], padding=True, return_tensors="pt"
    )
    model.eval()
    logits = model(encoded["input_ids"], encoded["attention_mask"]).logits
    assert logits.argmax(dim=1).tolist() == list(range(len(LABELS)))


def test_label_init_embeds_only_the_label_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_dict(small_config("warm_start.enabled=false"))
    data = load_task(settings.task, seed=settings.seed)
    model = build_classifier(settings.model, label_names=data.label_names, seed=0)
    tokenizer = load_tokenizer(settings.model)
    seen: list[str] = []
    real_embed = model.embed

    def spying_embed(input_ids: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.extend(tokenizer.batch_decode(input_ids, skip_special_tokens=True))
        return real_embed(input_ids, *args, **kwargs)

    monkeypatch.setattr(model, "embed", spying_embed)
    monkeypatch.setattr(
        warm_start, "warm_start_head", lambda *a, **k: pytest.fail("warm start ran")
    )
    public_start(
        model, settings=settings, label_names=data.label_names, transfer=data.transfer
    )
    expected = [
        tokenizer.decode(
            tokenizer(label_text(n))["input_ids"], skip_special_tokens=True
        )
        for n in data.label_names
    ]
    assert seen == expected
    records = set(data.train["text"]) | set(data.test["text"])
    assert not records & set(seen)


def test_a_warm_start_on_one_label_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A tiny task.validation_file whose warm-start part holds one label: a
    # head fitted to it would answer that label for every text.
    settings = settings_from_dict(small_config("label_init=false"))
    model = build_classifier(settings.model, label_names=LABELS, seed=0)
    before = model.classifier.weight.detach().clone()
    transfer = build_split(
        ["card never came", "where is my card"], [0, 0], label_names=LABELS
    )
    with caplog.at_level("WARNING", logger="fedmodel.training.warm_start"):
        public_start(model, settings=settings, label_names=LABELS, transfer=transfer)
    torch.testing.assert_close(model.classifier.weight.detach(), before)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.startswith("no warm start: the 2 server-held records")
    assert "'card_arrival'" in warned


def test_label_init_can_be_turned_off() -> None:
    settings = settings_from_dict(
        small_config("label_init=false", "warm_start.enabled=false")
    )
    model = build_classifier(settings.model, label_names=LABELS, seed=0)
    before = model.classifier.weight.detach().clone()
    public_start(model, settings=settings, label_names=LABELS, transfer=None)
    torch.testing.assert_close(model.classifier.weight.detach(), before)


def test_a_label_without_a_word_is_found() -> None:
    assert wordless_label(LABELS) is None
    assert wordless_label(("0", "1", "10")) == "0"
    assert wordless_label(("I10-I16", "2.5", "3")) == "2.5"
    assert wordless_label(("x1", "négatif")) is None


def test_number_labels_leave_the_head_untrained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_from_dict(small_config("warm_start.enabled=false"))
    numbers = ("0", "1", "2")
    model = build_classifier(settings.model, label_names=numbers, seed=0)
    before = model.classifier.weight.detach().clone()
    with caplog.at_level("WARNING", logger=warm_start.__name__):
        public_start(model, settings=settings, label_names=numbers, transfer=None)
    torch.testing.assert_close(model.classifier.weight.detach(), before)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("label name '0' has no letter in it" in line for line in said)
    # One named label among numbers does not bring the start back.
    mixed = ("0", "card_arrival", "2")
    model = build_classifier(settings.model, label_names=mixed, seed=0)
    before = model.classifier.weight.detach().clone()
    public_start(model, settings=settings, label_names=mixed, transfer=None)
    torch.testing.assert_close(model.classifier.weight.detach(), before)


def _descriptions(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("label,description\n" + rows)
    return path


def test_described_numbers_start_like_their_names(tmp_path: Path) -> None:
    # Row order and an extra label do not matter; the label order does.
    path = _descriptions(
        tmp_path,
        "2,Diseases of the circulatory system\n"
        "0,card_arrival\n9,not a label of this task\n1,lost or stolen card\n",
    )
    settings = settings_from_dict(
        small_config("warm_start.enabled=false", f"task.label_descriptions={path}")
    )
    numbers = ("0", "1", "2")
    model = build_classifier(settings.model, label_names=numbers, seed=0)
    public_start(
        model,
        settings=settings,
        label_names=numbers,
        transfer=None,
        descriptions=read_descriptions(settings.task),
    )
    named = build_classifier(settings.model, label_names=LABELS, seed=0)
    init_head_from_label_names(named, settings=settings.model, label_names=LABELS)
    torch.testing.assert_close(model.classifier.weight, named.classifier.weight)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("0,card arrival\n1,lost card\n", r"no description of the label \['2'\]"),
        ("0,a\n1,b\n2,c\n1,d\n", "describes label '1' twice, at rows 2 and 4"),
        ("0,a\n1, \n2,c\n", r"1 description that is missing .* row 2"),
    ],
)
def test_bad_descriptions_are_refused_by_file_and_row(
    tmp_path: Path, rows: str, message: str
) -> None:
    path = _descriptions(tmp_path, rows)
    task = small_settings(f"task.label_descriptions={path}").task
    with pytest.raises(FedmodelError, match=message) as raised:
        described_labels(task, ("0", "1", "2"), read_descriptions(task))
    assert "task.label_descriptions" in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        # Setting task.label_column, as the line said, renames the data files'
        # label column too: the files' 'label' column is then not found.
        (
            "code,description",
            "has no label column 'label' (columns found: ['code', 'description'])"
            "; rename its label column to 'label': it names each label in the "
            "column the data files name theirs in (task.label_column)",
        ),
        (
            "label,desc",
            "has no description column 'description' (columns found: ['label', "
            "'desc']); rename its description column to 'description'",
        ),
    ],
)
def test_descriptions_need_both_columns(
    tmp_path: Path, header: str, message: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"{header}\n0,a\n1,b\n")
    task = small_settings(f"task.label_descriptions={path}").task
    with pytest.raises(FedmodelError) as raised:
        described_labels(task, ("0", "1"), read_descriptions(task))
    assert message in str(raised.value)
    assert "set task.label_column" not in str(raised.value)


def test_descriptions_without_the_label_start_are_refused() -> None:
    with pytest.raises(FedmodelError, match="label_init is false"):
        small_settings("label_init=false", "task.label_descriptions=labels.csv")


def test_number_descriptions_leave_the_head_untrained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _descriptions(tmp_path, "a,1\nb,2\n")
    settings = settings_from_dict(
        small_config("warm_start.enabled=false", f"task.label_descriptions={path}")
    )
    model = build_classifier(settings.model, label_names=("a", "b"), seed=0)
    before = model.classifier.weight.detach().clone()
    with caplog.at_level("WARNING", logger=warm_start.__name__):
        public_start(
            model,
            settings=settings,
            label_names=("a", "b"),
            transfer=None,
            descriptions=read_descriptions(settings.task),
        )
    torch.testing.assert_close(model.classifier.weight.detach(), before)
    assert any("label description '1'" in r.getMessage() for r in caplog.records)


def test_no_server_records_is_said(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_from_dict(small_config())
    model = build_classifier(settings.model, label_names=LABELS, seed=0)
    with caplog.at_level("INFO", logger=warm_start.__name__):
        public_start(model, settings=settings, label_names=LABELS, transfer=None)
    said = [r.getMessage() for r in caplog.records if r.name == warm_start.__name__]
    assert any("task.validation_file" in line for line in said)


def test_mismatched_label_count_is_refused() -> None:
    settings = settings_from_dict(small_config())
    model = build_classifier(settings.model, label_names=LABELS, seed=0)
    with pytest.raises(ValueError, match="label names"):
        label_init.init_head_from_label_names(
            model, settings=settings.model, label_names=LABELS[:2]
        )
