"""Settings that follow the privacy budget, and explicit values that win."""

from __future__ import annotations

import dataclasses

import pytest

from fedmodel.config import (
    compose_config,
    from_run_config,
    settings_from_dict,
    to_run_config,
)
from fedmodel.config.budget_rule import derived_keys, unmeasured_budget
from fedmodel.config.budget_table import (
    HEAD_RULE,
    MEASURED_FROM_EPSILON,
    OFF_ROWS,
    budget_row,
)
from fedmodel.errors import FedmodelError
from fedmodel.research.calibrated_settings import CalibratedSetting, training_settings
from fedmodel.research.privacy_plan import plan_run


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0, 3.0, 4.0, 8.0, 20.0])
def test_head_defaults_come_from_the_target_epsilon(epsilon: float) -> None:
    raw = compose_config(["model=tiny", f"privacy.target_epsilon={epsilon}"])
    settings = settings_from_dict(raw)
    row = budget_row(finetune_mode="head", target_epsilon=epsilon)
    assert row in HEAD_RULE and epsilon < row.below_epsilon
    assert settings.finetune.learning_rate == row.learning_rate
    assert settings.finetune.batch_size == row.batch_size
    assert settings.finetune.local_epochs == row.local_epochs
    assert settings.finetune.train_head_bias == row.train_head_bias
    assert settings.privacy.max_grad_norm == row.max_grad_norm


def test_strict_budgets_take_smaller_steps_or_larger_batches() -> None:
    strict = budget_row(finetune_mode="head", target_epsilon=1.0)
    generous = budget_row(finetune_mode="head", target_epsilon=8.0)
    assert strict != generous
    assert strict.learning_rate is not None and generous.learning_rate is not None
    assert strict.batch_size is not None and generous.batch_size is not None
    # The largest step one batch can take is learning rate x clip / batch size.
    assert (
        strict.learning_rate * strict.max_grad_norm / strict.batch_size
        < generous.learning_rate * generous.max_grad_norm / generous.batch_size
    )


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("finetune.learning_rate=0.3", "learning_rate", 0.3),
        ("finetune.batch_size=64", "batch_size", 64),
        ("finetune.local_epochs=2", "local_epochs", 2),
        ("finetune.train_head_bias=true", "train_head_bias", True),
    ],
)
def test_an_explicit_value_wins(override: str, key: str, value: float) -> None:
    raw = compose_config(["model=tiny", "privacy.target_epsilon=1", override])
    settings = settings_from_dict(raw)
    assert getattr(settings.finetune, key) == value
    assert f"finetune.{key}" not in derived_keys(raw)


def test_explicit_clipping_wins_and_auto_means_derived() -> None:
    set_clip = settings_from_dict(
        compose_config(["model=tiny", "privacy.max_grad_norm=0.25"])
    )
    assert set_clip.privacy.max_grad_norm == 0.25
    auto = settings_from_dict(
        compose_config(["model=tiny", "finetune.learning_rate=auto"])
    )
    assert (
        auto.finetune.learning_rate
        == budget_row(finetune_mode="head", target_epsilon=8.0).learning_rate
    )


def test_without_local_noise_no_clip_is_set_and_off_takes_its_own_row() -> None:
    off = settings_from_dict(compose_config(["model=tiny", "privacy=off"]))
    row = OFF_ROWS["head"]
    assert (off.finetune.learning_rate, off.finetune.local_epochs) == (
        row.learning_rate,
        row.local_epochs,
    )
    # Held without noise too: a trained bias fits each site's label skew.
    assert off.finetune.train_head_bias is False
    assert off.privacy.max_grad_norm is None
    central = settings_from_dict(compose_config(["model=tiny", "privacy=central"]))
    last = HEAD_RULE[-1]
    assert (central.finetune.learning_rate, central.finetune.local_epochs) == (
        last.learning_rate,
        last.local_epochs,
    )
    assert central.privacy.max_grad_norm is None
    # A value the user sets wins under privacy=off too.
    mine = settings_from_dict(
        compose_config(["model=tiny", "privacy=off", "finetune.local_epochs=3"])
    )
    assert mine.finetune.local_epochs == 3


@pytest.mark.parametrize("privacy", ["privacy=central", "privacy=off"])
def test_auto_clipping_without_local_noise_is_the_modes_null(privacy: str) -> None:
    # Before, "config key 'privacy.max_grad_norm' must be a number: 'auto'",
    # where finetune.learning_rate=auto resolved as its null does.
    base = ["model=tiny", privacy]
    auto = settings_from_dict(compose_config([*base, "privacy.max_grad_norm=AUTO"]))
    assert auto == settings_from_dict(compose_config(base))
    assert auto.privacy.max_grad_norm is None
    assert "privacy.max_grad_norm" not in auto.budget_rule_keys
    resolved = dataclasses.asdict(auto)
    assert settings_from_dict(from_run_config(to_run_config(resolved))) == auto


@pytest.mark.parametrize("written", ["null", "auto"])
def test_a_mode_without_a_rule_must_set_its_values(written: str) -> None:
    # The refusal quotes what was written: it said "is null" for auto too.
    override = f"finetune.learning_rate={written}"
    with pytest.raises(FedmodelError) as refused:
        settings_from_dict(compose_config(["model=tiny", "finetune=lora", override]))
    assert str(refused.value).startswith(f"{override} asks the budget rule")
    lora = settings_from_dict(compose_config(["model=tiny", "finetune=lora"]))
    assert lora.privacy.max_grad_norm == 1.0


def test_clients_receive_the_values_the_server_resolved() -> None:
    raw = compose_config(["model=tiny", "privacy.target_epsilon=1"])
    server = settings_from_dict(raw)
    resolved = {**raw, "finetune": vars(server.finetune)}
    client = settings_from_dict(from_run_config(to_run_config(resolved)))
    assert client.finetune == server.finetune


def test_the_resolved_config_lists_the_keys_the_rule_filled() -> None:
    # Learning rate 8 is epsilon 8's own, but set: the rule did not fill it.
    raw = compose_config(
        ["model=tiny", "privacy.target_epsilon=8", "finetune.learning_rate=8"]
    )
    settings = settings_from_dict(raw)
    assert settings.budget_rule_keys == [
        "finetune.batch_size",
        "finetune.local_epochs",
        "finetune.train_head_bias",
        "privacy.max_grad_norm",
        "privacy.grad_sample_mode",
    ]
    # Resolved again (a client's round, a run folder's config), it keeps them.
    resolved = dataclasses.asdict(settings)
    assert settings_from_dict(from_run_config(to_run_config(resolved))) == settings
    # A list naming a value the rule did not choose is refused, key named.
    resolved["finetune"]["local_epochs"] = 3
    with pytest.raises(FedmodelError, match=r"'finetune.local_epochs', but its val"):
        settings_from_dict(resolved)
    with pytest.raises(FedmodelError, match="names 'finetune.momentum', which"):
        settings_from_dict({**raw, "budget_rule_keys": ["finetune.momentum"]})


ALL_HEAD_KEYS_SET = [
    "finetune.learning_rate=2",
    "finetune.batch_size=512",
    "finetune.local_epochs=6",
    "finetune.train_head_bias=false",
    "privacy.max_grad_norm=0.25",
    "privacy.grad_sample_mode=onepass",
]


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["privacy.target_epsilon=0.5"], True),
        (["privacy.target_epsilon=0.5", "finetune.learning_rate=0.5"], True),
        ([f"privacy.target_epsilon={MEASURED_FROM_EPSILON}"], False),
        (["privacy.target_epsilon=8"], False),
        (["privacy.target_epsilon=0.5", *ALL_HEAD_KEYS_SET], False),
        (["privacy.target_epsilon=0.5", "privacy=central"], False),
        (["privacy.target_epsilon=0.5", "finetune=lora"], False),
    ],
)
def test_a_budget_below_those_measured_is_named_with_the_rules_keys(
    overrides: list[str], said: bool
) -> None:
    settings = settings_from_dict(compose_config(["model=tiny", *overrides]))
    note = unmeasured_budget(settings)
    assert (note is not None) == said
    if note is not None:
        assert note.startswith("privacy.target_epsilon=0.5 is below 1, the smallest")
        # The keys the rule filled, and only those: a value set stays out.
        assert ", ".join(settings.budget_rule_keys) in note
        assert ("finetune.learning_rate" in note) == (len(overrides) == 1)


def test_the_plan_is_calibrated_with_the_derived_settings() -> None:
    raw = compose_config(
        [
            "model=tiny",
            "privacy.target_epsilon=1",
            "num_clients=2",
            "finetune.local_epochs=2",
            "finetune.learning_rate=2.0",
        ]
    )
    settings = settings_from_dict(raw)
    shown = training_settings(settings)
    assert shown["finetune.batch_size"].source == "budget"
    assert shown["finetune.local_epochs"] == CalibratedSetting(2, "set")
    # Set to the rule's own value (epsilon 1's row): still the user's.
    assert shown["finetune.learning_rate"] == CalibratedSetting(2, "set")
    assert shown["privacy.grad_sample_mode"] == CalibratedSetting("onepass", "budget")
    for plan in plan_run(settings):
        assert plan.sample_rate is not None and plan.num_records > 0
        batches = round(1 / plan.sample_rate)
        assert batches == -(-plan.num_records // settings.finetune.batch_size)


def test_clipping_method_defaults_to_the_faster_exact_one() -> None:
    head = settings_from_dict(compose_config(["model=tiny"]))
    assert head.privacy.grad_sample_mode == "onepass"
    lora = settings_from_dict(compose_config(["model=tiny", "finetune=lora"]))
    assert lora.privacy.grad_sample_mode == "onepass"
    full = settings_from_dict(compose_config(["model=tiny", "finetune=full"]))
    assert full.privacy.grad_sample_mode == "onepass"
    chosen = settings_from_dict(
        compose_config(["model=tiny", "privacy.grad_sample_mode=hooks"])
    )
    assert chosen.privacy.grad_sample_mode == "hooks"
    with pytest.raises(FedmodelError, match="grad_sample_mode"):
        settings_from_dict(
            compose_config(["model=tiny", "privacy.grad_sample_mode=ghosts"])
        )
