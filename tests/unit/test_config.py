"""Every config group composes into valid settings; the run-config bridge is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.config import (
    CONF_DIR,
    compose_config,
    from_run_config,
    settings_from_dict,
    to_run_config,
)
from fedmodel.errors import FedmodelError

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"{group}={option}" for group in GROUPS for option in _options(group)],
)
def test_every_group_option_composes(override: str) -> None:
    raw = compose_config([override])
    settings = settings_from_dict(raw)
    assert settings.num_clients >= 1


def test_groups_match_design() -> None:
    for group in (
        "task",
        "model",
        "partition",
        "privacy",
        "strategy",
        "distill",
        "federation",
        "experiment",
        "finetune",
    ):
        assert group in GROUPS


def test_run_config_round_trip_is_exact() -> None:
    raw = compose_config(["partition=natural", "partition.label_groups={a: x, b: y}"])
    flat = to_run_config(raw)
    assert all("_" not in key for key in flat)
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())
    assert from_run_config(flat) == raw


def test_experiment_overrides_only_what_differs() -> None:
    raw = compose_config(["experiment=hospitals_eps3"])
    assert raw["task"]["name"] == "hospital"
    assert raw["privacy"]["target_epsilon"] == 3.0
    assert raw["num_clients"] == 6


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("num_clients=0", "num_clients"),
        ("privacy.target_epsilon=-1", "privacy.target_epsilon"),
        ("privacy.accountant=gdp", "privacy.accountant"),
        ("privacy.target_delta=2", "privacy.target_delta"),
        ("finetune.batch_size=0", "finetune.batch_size"),
        ("task.val_fraction=1.5", "task.val_fraction"),
    ],
)
def test_bad_values_name_the_key(override: str, fragment: str) -> None:
    with pytest.raises(FedmodelError, match=fragment.replace(".", r"\.")):
        settings_from_dict(compose_config([override]))


def test_unknown_and_mistyped_keys_are_named() -> None:
    raw = compose_config([])
    with pytest.raises(FedmodelError, match="unknown config key.*'privacy'"):
        settings_from_dict({**raw, "privacy": {**raw["privacy"], "epsilon": 3}})
    with pytest.raises(FedmodelError, match="'num_rounds' must be an integer"):
        settings_from_dict({**raw, "num_rounds": "three"})


def test_bad_override_is_a_clear_error() -> None:
    with pytest.raises(FedmodelError, match="task=nosuchtask"):
        compose_config(["task=nosuchtask"])


def test_pyproject_points_flower_at_the_apps() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert 'serverapp = "fedmodel.federation.server_app:app"' in text
    assert 'clientapp = "fedmodel.federation.client_app:app"' in text
