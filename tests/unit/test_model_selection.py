"""keep_best: the last round unless the start's loss on the server's split is lower.

The test split is never read.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import datasets
import pytest
import torch

from fedmodel.config import settings_from_dict
from fedmodel.data.tasks import load_task
from fedmodel.training import model_selection
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.model_selection import LastRoundOrStart
from tests.conftest import small_config


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    settings = settings_from_dict(small_config("task=hospital"))
    data = load_task(settings.task, seed=settings.seed)
    assert data.transfer is not None
    embedded: list[datasets.Dataset] = []
    real_embed = model_selection.embed_split

    def spying(*args: Any, **kwargs: Any) -> Any:
        embedded.append(kwargs["split"])
        return real_embed(*args, **kwargs)

    monkeypatch.setattr(model_selection, "embed_split", spying)
    model = GlobalModel(settings, label_names=data.label_names, test=data.test)
    selector = LastRoundOrStart(
        settings,
        classifier=model.classifier,
        trainable=model.trainable,
        validation=data.transfer,
    )
    return data, model, selector, embedded


def test_selection_reads_only_the_server_validation_split(
    setup: tuple[Any, ...],
) -> None:
    data, model, selector, embedded = setup
    selector.offer(0, model.weights())
    assert [split["text"] for split in embedded] == [data.transfer["text"]]
    assert not set(data.transfer["text"]) & set(data.test["text"])


def test_one_validation_record_is_said_as_one(
    setup: tuple[Any, ...], caplog: pytest.LogCaptureFixture
) -> None:
    data, model, _, _ = setup
    one = LastRoundOrStart(
        settings_from_dict(small_config("task=hospital")),
        classifier=model.classifier,
        trainable=model.trainable,
        validation=data.transfer.select([0]),
    )
    with caplog.at_level("INFO", logger=model_selection.__name__):
        one.offer(0, model.weights())
    assert "server validation (1 record) after round 0: " in caplog.text


def _always(weights: dict[str, torch.Tensor], label: int) -> dict[str, torch.Tensor]:
    """Weights that always predict `label`."""
    fixed = {name: torch.zeros_like(w) for name, w in weights.items()}
    bias = next(name for name in fixed if name.endswith("classifier.bias"))
    fixed[bias][label] = 100.0
    return fixed


def _rarest_label(data: Any) -> int:
    counts = Counter(data.transfer["label"])
    return min(range(len(data.label_names)), key=lambda label: counts[label])


def test_a_last_round_below_the_start_keeps_the_start(
    setup: tuple[Any, ...],
) -> None:
    data, model, selector, _ = setup
    start = model.weights()
    assert selector.offer(0, start)
    rarest = _rarest_label(data)
    model.load(_always(start, rarest))
    assert not selector.offer(1, _always(start, rarest))
    assert selector.kept_round == 0
    torch.testing.assert_close(selector.kept.weights, start)


def test_the_last_round_is_kept_over_a_better_earlier_round(
    setup: tuple[Any, ...],
) -> None:
    data, model, selector, _ = setup
    start = model.weights()
    rarest = _rarest_label(data)
    selector.offer(0, _always(start, rarest))  # a start every round beats
    model.load(start)
    assert selector.offer(1, start)
    later = {name: w * 0.5 for name, w in start.items()}
    model.load(later)
    # Round 2 may score below round 1, but it is the last and beats the start.
    assert selector.offer(2, later)
    assert selector.kept_round == 2
    torch.testing.assert_close(selector.kept.weights, later)


def test_the_loss_decides_not_the_accuracy(setup: tuple[Any, ...]) -> None:
    _, model, selector, _ = setup
    start = model.weights()
    selector.offer(0, start)
    # The same predictions, far more confident: equal accuracy, higher loss.
    sharper = {name: w * 20 for name, w in start.items()}
    model.load(sharper)
    assert not selector.offer(1, sharper)
    assert selector.latest.result.accuracy == selector.start.result.accuracy
    assert selector.kept_round == 0


def test_ties_keep_the_last_round(setup: tuple[Any, ...]) -> None:
    _, model, selector, _ = setup
    weights = model.weights()
    selector.offer(0, weights)
    assert selector.offer(1, weights)
    assert selector.kept_round == 1


def test_an_empty_validation_split_is_refused(setup: tuple[Any, ...]) -> None:
    data, model, _, _ = setup
    with pytest.raises(ValueError, match="empty"):
        LastRoundOrStart(
            model.settings,
            classifier=model.classifier,
            trainable=model.trainable,
            validation=data.transfer.select([]),
        )
