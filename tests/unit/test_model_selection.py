"""Keeping the best global model by the server's own split, never the test split."""

from __future__ import annotations

from typing import Any

import datasets
import pytest
import torch

from fedmodel.config import settings_from_dict
from fedmodel.data import load_task
from fedmodel.training import model_selection
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.model_selection import BestModelSelector
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
    selector = BestModelSelector(
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


def test_a_worse_round_never_replaces_the_best(setup: tuple[Any, ...]) -> None:
    _, model, selector, _ = setup
    start = model.weights()
    assert selector.offer(0, start)
    start_score = selector.best.result.accuracy
    broken = {name: torch.zeros_like(w) for name, w in start.items()}
    bias = next(name for name in broken if name.endswith("classifier.bias"))
    broken[bias][0] = 100.0  # always predicts label 0
    model.load(broken)
    selector.offer(1, broken)
    if selector.best.round == 1:  # only if predicting label 0 really was better
        assert selector.best.result.accuracy > start_score
    else:
        assert selector.best.round == 0
        torch.testing.assert_close(selector.best.weights, start)


def test_ties_keep_the_earlier_model(setup: tuple[Any, ...]) -> None:
    _, model, selector, _ = setup
    weights = model.weights()
    selector.offer(0, weights)
    assert not selector.offer(1, weights)
    assert selector.best.round == 0


def test_an_empty_validation_split_is_refused(setup: tuple[Any, ...]) -> None:
    data, model, _, _ = setup
    with pytest.raises(ValueError, match="empty"):
        BestModelSelector(
            model.settings,
            classifier=model.classifier,
            trainable=model.trainable,
            validation=data.transfer.select([]),
        )
