"""Sweep keys compose from overrides; seeds leave the test set alone; canaries."""

from __future__ import annotations

import datasets
import pytest

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data.canaries import canary_splits
from fedmodel.data.clients import load_client_data
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from tests.conftest import small_config

# Each key a sweep varies, two values each (as `--multirun key=a,b` expands).
SWEPT = [
    ("privacy.target_epsilon", ["1", "8"], lambda s: s.privacy.target_epsilon),
    ("privacy.max_grad_norm", ["0.5", "2"], lambda s: s.privacy.max_grad_norm),
    ("num_clients", ["2", "5"], lambda s: s.num_clients),
    ("partition.alpha", ["0.1", "10"], lambda s: s.partition.alpha),
    ("finetune", ["head", "lora"], lambda s: s.finetune.mode),
    ("seed", ["1", "2"], lambda s: s.seed),
    ("privacy", ["central", "off"], lambda s: s.privacy.mode),
    ("task.split_seed", ["3", "null"], lambda s: s.task.split_seed),
]


@pytest.mark.parametrize(("key", "values", "read"), SWEPT)
def test_swept_keys_compose(key: str, values: list[str], read: object) -> None:
    seen = set()
    for value in values:
        settings = settings_from_dict(
            small_config("partition=dirichlet", f"{key}={value}")
        )
        seen.add(read(settings))  # type: ignore[operator]
    assert len(seen) == len(values)


def test_centralized_experiment_gives_one_client_everything() -> None:
    settings = settings_from_dict(
        small_config("experiment=centralized", "num_clients=1", "task.val_fraction=0")
    )
    assert settings.num_clients == 1 and settings.strategy.min_train_clients == 1
    train, _, _ = load_client_data(settings, 0)
    assert len(train) == 600
    # A smoke run of the experiment is still centralized: its sweep rows were
    # labelled federated when debug=smoke's 2 clients won.
    smoke = compose_config(["experiment=centralized", "debug=smoke"])
    assert smoke["num_clients"] == 1


def test_seed_changes_training_but_not_the_test_set() -> None:
    first, second = (
        settings_from_dict(small_config("task=hospital", f"seed={seed}"))
        for seed in (1, 2)
    )
    assert first.task.split_seed == second.task.split_seed == 42
    one = load_task(first.task, seed=first.seed)
    two = load_task(second.task, seed=second.seed)
    assert one.test["text"] == two.test["text"]
    assert one.train["text"] == two.train["text"]
    # The partition still follows the run seed.
    assert (
        load_client_data(first, 0)[0]["text"] != load_client_data(second, 0)[0]["text"]
    )
    following = settings_from_dict(
        small_config("task=hospital", "task.split_seed=null")
    )
    assert load_task(following.task, seed=1).test["text"] != one.test["text"]


def test_canaries_are_planted_in_the_audited_client_only() -> None:
    plain = settings_from_dict(small_config())
    planted = settings_from_dict(
        small_config("audit.canaries=5", "audit.reference_canaries=7", "audit.client=1")
    )
    for client in range(3):
        before = load_client_data(plain, client)[0]
        after = load_client_data(planted, client)[0]
        extra = 5 if client == 1 else 0
        assert len(after) == len(before) + extra
        assert after["text"][: len(before)] == before["text"]
    # Canary words come from the client's whole partition: train and held-out.
    train, val, _ = load_client_data(plain, 1)
    canaries, reference = canary_splits(
        planted,
        client_records=datasets.concatenate_datasets([train, val]),
        num_labels=77,
    )
    assert len(reference) == 7
    assert load_client_data(planted, 1)[0]["text"][-5:] == canaries["text"]
    assert not set(reference["text"]) & set(canaries["text"])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("audit.canaries=-1", "audit.canaries"),
        ("audit.client=7", "audit.client=7"),
        ("tracking.name=wandb", "tracking.name"),
        ("privacy.mode=shuffle", "privacy.mode"),
    ],
)
def test_bad_research_settings_are_named(override: str, named: str) -> None:
    with pytest.raises(FedmodelError, match=named):
        settings_from_dict(small_config("audit.canaries=2", override))
