from collections import Counter

import pytest

from fedmodel.data.tasks import TASKS, load_task
from fedmodel.errors import FedmodelError
from tests.conftest import group_settings


def test_unknown_task_lists_known_names() -> None:
    with pytest.raises(FedmodelError, match="unknown task.name 'nope'") as info:
        load_task(group_settings("task", name="nope"), seed=0)
    for name in TASKS:
        assert name in str(info.value)


def test_bank_loads_77_intents_and_three_splits() -> None:
    data = load_task(group_settings("task", "bank", split_seed=None), seed=0)
    assert len(data.label_names) == 77
    assert list(data.label_names) == sorted(data.label_names)
    assert data.transfer is not None
    assert len(data.train) > 8000 and len(data.test) > 3000 and len(data.transfer)
    assert set(data.train["label"]) == set(range(77))
    assert data.train.column_names == ["text", "label"]
    assert all(text.strip() == text and text for text in data.train["text"])
    assert len(set(zip(data.train["text"], data.train["label"], strict=True))) == len(
        data.train
    )


def test_caps_keep_a_seeded_subset() -> None:
    task = group_settings(
        "task", "bank", max_train_examples=200, max_test_examples=50, split_seed=None
    )
    first = load_task(task, seed=1)
    again = load_task(task, seed=1)
    other = load_task(task, seed=2)
    assert (len(first.train), len(first.test)) == (200, 50)
    assert first.train["text"] == again.train["text"]
    assert first.train["text"] != other.train["text"]


def test_cap_must_be_positive() -> None:
    with pytest.raises(FedmodelError, match="task.max_train_examples"):
        load_task(group_settings("task", "bank", max_train_examples=0), seed=0)


def test_hospital_chapters_and_cap() -> None:
    task = group_settings(
        "task", "hospital", max_per_chapter=100, min_per_chapter=50, split_seed=None
    )
    data = load_task(task, seed=0)
    assert len(data.label_names) == 21  # chapter 22 has three leaves
    assert data.label_names[0].startswith("Certain infectious and parasitic")
    assert data.transfer is not None
    labels = [*data.train["label"], *data.test["label"], *data.transfer["label"]]
    counts = Counter(labels)
    assert set(counts) == set(range(21))
    assert max(counts.values()) == 100
    assert len(data.test) == pytest.approx(0.2 * len(labels), rel=0.05)
    texts = [*data.train["text"], *data.test["text"], *data.transfer["text"]]
    assert len(set(texts)) == len(texts)


def test_hospital_split_is_seeded_and_fractions_checked() -> None:
    task = group_settings(
        "task", "hospital", max_per_chapter=60, transfer_fraction=0.0, split_seed=None
    )
    first = load_task(task, seed=3)
    assert first.transfer is None
    assert first.test["text"] == load_task(task, seed=3).test["text"]
    assert first.test["text"] != load_task(task, seed=4).test["text"]
    bad = group_settings(
        "task", "hospital", test_fraction=0.6, transfer_fraction=0.5, split_seed=None
    )
    with pytest.raises(FedmodelError, match="task.test_fraction"):
        load_task(bad, seed=0)
