"""The warm start is kept only where the server's held-out records favour it."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from fedmodel.config import settings_from_dict
from fedmodel.data.splits import TaskData, build_split
from fedmodel.data.tasks import load_task
from fedmodel.federation.server_model import offer_start, start_model
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.label_init import init_head_from_label_names
from fedmodel.model.load import build_classifier
from fedmodel.training import warm_start
from fedmodel.training.model_selection import LastRoundOrStart
from fedmodel.training.warm_start import public_start
from tests.conftest import logging_restored, small_config


@pytest.fixture(scope="module")
def bank() -> TaskData:
    return load_task(settings_from_dict(small_config()).task, seed=0)


def _label_start(label_names: tuple[str, ...]) -> torch.Tensor:
    settings = settings_from_dict(small_config())
    model = build_classifier(
        settings.model, label_names=label_names, seed=settings.seed
    )
    init_head_from_label_names(model, settings=settings.model, label_names=label_names)
    return model.classifier.weight.detach()


def _one_per_label(bank: TaskData, count: int) -> list[int]:
    """Rows of bank's transfer split, the first of each of `count` labels."""
    assert bank.transfer is not None
    first: dict[int, int] = {}
    for row, label in enumerate(bank.transfer["label"]):
        first.setdefault(label, row)
    return sorted(first.values())[:count]


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == warm_start.__name__]


@pytest.mark.parametrize(
    ("records", "held_out"), [(10, "only 2 are held out"), (3, "only 1 is held out")]
)
def test_a_server_file_too_small_to_check_keeps_the_label_start(
    records: int,
    held_out: str,
    bank: TaskData,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Ten records of ten labels: 2 held out to choose the model, too few to
    # tell a warm start on the other 8 from the label-name start.
    assert bank.transfer is not None
    tiny = dataclasses.replace(
        bank, transfer=bank.transfer.select(_one_per_label(bank, records))
    )
    settings = settings_from_dict(small_config(f"run_dir={tmp_path}"))
    with caplog.at_level("INFO", logger=warm_start.__name__):
        model, _, warm = start_model(settings, task=tiny, run_dir=tmp_path)
    assert warm is False  # what summary.json reports as warm_start
    torch.testing.assert_close(
        model.classifier.classifier.weight.detach(), _label_start(bank.label_names)
    )
    (line,) = [s for s in _said(caplog) if "warm start" in s]
    assert line.startswith("no warm start: the head keeps the label-name start")
    assert held_out in line


def test_a_warm_start_worse_than_the_start_is_not_kept(
    bank: TaskData, caplog: pytest.LogCaptureFixture
) -> None:
    # The fitted records carry the wrong labels: the held-out records, the
    # same texts rightly labelled, score the label-name start better.
    assert bank.transfer is not None
    held = bank.transfer.select(_one_per_label(bank, 20))
    wrong = [(label + 1) % len(bank.label_names) for label in held["label"]]
    fit = build_split(list(held["text"]), wrong, label_names=bank.label_names)
    settings = settings_from_dict(small_config())
    model = build_classifier(
        settings.model, label_names=bank.label_names, seed=settings.seed
    )
    with caplog.at_level("INFO", logger=warm_start.__name__):
        warm = public_start(
            model,
            settings=settings,
            label_names=bank.label_names,
            transfer=fit,
            held_out=held,
        )
    assert warm is False
    torch.testing.assert_close(
        model.classifier.weight.detach(), _label_start(bank.label_names)
    )
    (line,) = [s for s in _said(caplog) if "warm start" in s]
    assert line.startswith(
        "warm start not kept, the head keeps the label-name start: on the 20 "
        "server-held records kept out of it, the warm start (fitted on 20)"
    )


@dataclass(frozen=True)
class FullStart:
    """A run's start-up on bank's whole server split, as the ServerApp makes it."""

    warm: bool
    head: torch.Tensor  # the classifier's weight once start_model returned
    selector: LastRoundOrStart | None
    embedded: list[int]  # the length of each batch the model embedded
    said: list[str]  # the warm-start module's log lines


@pytest.fixture(scope="module")
def full_start(bank: TaskData, tmp_path_factory: pytest.TempPathFactory) -> FullStart:
    """One start-up (the warm start and the selector), shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("full-start")
    embedded: list[int] = []
    embed = PooledBertForSequenceClassification.embed

    def counted(
        self: PooledBertForSequenceClassification, input_ids: Any, *args: Any, **kw: Any
    ) -> Any:
        embedded.append(len(input_ids))
        return embed(self, input_ids, *args, **kw)

    lines = _LineRecorder()
    logger = logging.getLogger(warm_start.__name__)
    settings = settings_from_dict(small_config(f"run_dir={run_dir}"))
    with pytest.MonkeyPatch.context() as monkeypatch, logging_restored():
        monkeypatch.setattr(PooledBertForSequenceClassification, "embed", counted)
        logger.setLevel(logging.INFO)
        logger.addHandler(lines)
        try:
            model, resumed, warm = start_model(settings, task=bank, run_dir=run_dir)
            head = model.classifier.classifier.weight.detach().clone()
            selector = offer_start(model, resumed=resumed)
        finally:
            logger.removeHandler(lines)
    return FullStart(warm, head, selector, embedded, lines.said)


class _LineRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.said.append(record.getMessage())


def test_a_full_server_split_still_warm_starts(
    bank: TaskData, full_start: FullStart
) -> None:
    assert bank.transfer is not None
    assert full_start.warm is True
    start = _label_start(bank.label_names)
    assert not torch.equal(full_start.head, start)
    (line,) = [s for s in full_start.said if "warm start" in s]
    held = len(bank.transfer) - len(bank.transfer) * 4 // 5
    assert line.startswith(f"warm start kept: on the {held} server-held records")


def test_start_up_embeds_the_held_out_records_once(
    bank: TaskData, full_start: FullStart
) -> None:
    # The warm-start check scores by the model choice's selector, which has
    # embedded the held-out records already: no second embedding of them.
    assert bank.transfer is not None
    assert full_start.warm is True and full_start.selector is not None
    # Each record once: the label names, the test split, the warm start's
    # records and the ones held out of it.
    labels = len(bank.label_names)
    embedded = sum(full_start.embedded)
    assert embedded == labels + len(bank.test) + len(bank.transfer)
