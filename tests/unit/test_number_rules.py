"""Every number in the settings has a rule: finite and inside its stated range."""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from typing import Any

import pytest

from fedmodel.config import RunSettings, checks, compose_config, settings_from_dict
from fedmodel.config.number_rules import NUMBER_RULES, Bound
from fedmodel.errors import FedmodelError


def _schema_numbers(cls: type, path: str = "") -> dict[str, type]:
    """Dotted key -> int or float, for every numeric field (or list) in the schema."""
    found: dict[str, type] = {}
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        key = f"{path}.{spec.name}" if path else spec.name
        base = hints[spec.name]
        if type(None) in typing.get_args(base):  # X | None
            (base,) = [a for a in typing.get_args(base) if a is not type(None)]
        if typing.get_origin(base) is list:
            (base,) = typing.get_args(base)
        if dataclasses.is_dataclass(base):
            found.update(_schema_numbers(base, key))  # type: ignore[arg-type]
        elif base in (int, float):
            found[key] = base
    return found


SCHEMA_NUMBERS = _schema_numbers(RunSettings)


def _with(raw: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    *parents, last = key.split(".")
    node = changed
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = [value] if key == "distill.student.layers" else value
    return changed


def _outside(bound: Bound) -> float:
    """A value just outside the bound (below its low end, else above its high)."""
    if bound.low is not None:
        return bound.low if bound.low_open else bound.low - 1
    assert bound.high is not None
    return bound.high if bound.high_open else bound.high + 1


def test_every_numeric_key_has_a_rule_and_every_rule_a_key() -> None:
    assert set(SCHEMA_NUMBERS) == set(NUMBER_RULES)


def test_defaults_of_every_group_pass() -> None:
    for override in ("privacy=central", "strategy=robust", "task=hospital", ""):
        settings_from_dict(compose_config([override] if override else []))


@pytest.fixture(scope="module")
def central_raw() -> dict[str, Any]:
    """A composed config with every privacy key set (privacy=central)."""
    return compose_config(["privacy=central"])


@pytest.mark.parametrize("key", sorted(NUMBER_RULES))
@pytest.mark.parametrize("bad", ["nan", "inf", "outside"])
def test_each_key_refuses_non_finite_and_out_of_range(
    central_raw: dict[str, Any], key: str, bad: str
) -> None:
    bound = NUMBER_RULES[key]
    value = {"nan": math.nan, "inf": math.inf, "outside": _outside(bound)}[bad]
    is_int = SCHEMA_NUMBERS[key] is int
    if is_int and bad == "outside":
        value = int(value)
    with pytest.raises(FedmodelError) as info:
        settings_from_dict(_with(central_raw, key, value))
    message = str(info.value)
    assert f"'{key}" in message and repr(value) in message
    if not (is_int and bad != "outside"):  # a float for an int key: a type error
        assert bound.describe() in message


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("privacy.target_epsilon=nan", "privacy.target_epsilon", "nan"),
        ("privacy.target_epsilon=inf", "privacy.target_epsilon", "inf"),
        ("privacy.target_epsilon=0", "privacy.target_epsilon", "0.0"),
        ("finetune.learning_rate=nan", "finetune.learning_rate", "nan"),
        ("finetune.learning_rate=-1", "finetune.learning_rate", "-1.0"),
        ("seed=-1", "seed", "-1"),
        ("task.max_length=0", "task.max_length", "0"),
        ("strategy.fraction_train=0", "strategy.fraction_train", "0.0"),
        ("distill.kl_weight=nan", "distill.kl_weight", "nan"),
        ("latency.calls_batch1=0", "latency.calls_batch1", "0"),
    ],
)
def test_overrides_a_user_types_are_refused(
    override: str, key: str, value: str
) -> None:
    with pytest.raises(FedmodelError) as info:
        settings_from_dict(compose_config([override]))
    assert f"'{key}'" in str(info.value) and f"got {value}" in str(info.value)


def test_a_number_past_a_floats_range_is_said_to_read_as_inf() -> None:
    with pytest.raises(FedmodelError) as info:
        settings_from_dict(compose_config(["privacy.target_epsilon=1e400"]))
    assert "got inf (a number past a float's range, as 1e400, reads as inf)" in str(
        info.value
    )
    with pytest.raises(FedmodelError) as info:
        settings_from_dict(compose_config(["privacy.target_epsilon=-1"]))
    assert "reads as inf" not in str(info.value)


def test_bound_descriptions() -> None:
    assert Bound(low=0, low_open=True).describe() == "> 0"
    assert Bound(low=0, high=1, high_open=True).describe() == "in [0, 1)"
    assert not Bound(low=0).holds(math.inf)
    assert Bound(low=0, high=1).holds(1.0)


@pytest.mark.parametrize(
    "override",
    [
        "num_clients=0",
        "num_rounds=0",
        "finetune.batch_size=0",
        "finetune.local_epochs=0",
        "task.val_fraction=1.0",
        "privacy.target_delta=1.5",
        "privacy.max_grad_norm=-1",
        "distill.student.num_layers=0",
        "distill.temperature=0",
        "distill.epochs=0",
        "distill.kl_weight=-1",
        "audit.reference_canaries=-1",
    ],
)
def test_a_range_is_stated_once_in_number_rules(
    monkeypatch: pytest.MonkeyPatch, override: str
) -> None:
    """The config check states no range of its own: NUMBER_RULES is the one place."""
    monkeypatch.setattr(checks, "check_numbers", lambda settings: None)
    # A rule between keys, not a range: num_clients=0 leaves no round the
    # default federation.min_replies=1 could reach.
    monkeypatch.setattr(checks, "check_min_replies", lambda settings: None)
    settings_from_dict(compose_config([override]))
