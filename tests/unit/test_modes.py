"""Mode registries: the names config checks accept are the modes that exist."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from fedmodel.config import CONF_DIR, settings_from_dict
from fedmodel.config.compose import group_options
from fedmodel.config.modes import (
    ACCOUNTANT_NAMES,
    DEPLOYMENT,
    DISTILL_MODE_NAMES,
    DISTILL_PRECISION_NAMES,
    FINETUNE_MODE_NAMES,
    PRIVACY_MODE_NAMES,
    ROBUST_METHOD_NAMES,
    SIMULATION,
    STRATEGY_NAMES,
    TRACKER_NAMES,
)
from fedmodel.distill.precision import PRECISIONS
from fedmodel.errors import FedmodelError
from fedmodel.federation.strategy_choice import ROBUST_METHODS, STRATEGIES
from fedmodel.model.finetune import FINETUNE_MODES, finetune_mode
from fedmodel.privacy.calibration import ACCOUNTANTS
from fedmodel.privacy.modes import PRIVACY_MODES, privacy_mode
from fedmodel.run.tracking import START_CHECKS, TRACKERS
from tests.conftest import group_settings, small_config


def _option_values(group: str, key: str) -> set[str]:
    values = set()
    for option in group_options(group):
        path = CONF_DIR / group / f"{option}.yaml"
        values.add(str(yaml.safe_load(path.read_text(encoding="utf-8"))[key]))
    return values


def test_registries_hold_exactly_the_accepted_names() -> None:
    assert set(FINETUNE_MODES) == set(FINETUNE_MODE_NAMES)
    assert set(PRIVACY_MODES) == set(PRIVACY_MODE_NAMES)
    assert set(TRACKERS) == set(START_CHECKS) == set(TRACKER_NAMES)
    assert set(ACCOUNTANTS) == set(ACCOUNTANT_NAMES)
    assert set(STRATEGIES) == set(STRATEGY_NAMES)
    assert set(ROBUST_METHODS) == set(ROBUST_METHOD_NAMES)
    assert set(PRECISIONS) == set(DISTILL_PRECISION_NAMES)
    for name, mode in [*FINETUNE_MODES.items(), *PRIVACY_MODES.items()]:
        assert mode.name == name


def test_every_mode_has_its_config_option() -> None:
    assert _option_values("finetune", "mode") == set(FINETUNE_MODE_NAMES)
    assert _option_values("privacy", "mode") == set(PRIVACY_MODE_NAMES)
    assert _option_values("distill", "name") == set(DISTILL_MODE_NAMES)
    assert _option_values("tracking", "name") == set(TRACKER_NAMES)
    assert _option_values("strategy", "name") == set(STRATEGY_NAMES)
    assert _option_values("federation", "name") == {SIMULATION, DEPLOYMENT}


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("finetune.mode", "adapters", "finetune.mode must be one of"),
        ("privacy.mode", "local", "privacy.mode must be one of"),
        ("distill.name", "online", "distill.name must be one of"),
        ("tracking.name", "wandb", "tracking.name must be one of"),
        ("strategy.name", "fedyogi", "strategy.name must be one of"),
        ("strategy.robust_method", "mode", "strategy.robust_method must be one of"),
    ],
)
def test_unknown_mode_names_are_refused_by_the_config_check(
    key: str, value: str, fragment: str
) -> None:
    # Set in the config, as a stored one holds it: an override of an option's
    # key is refused before composing (test_config).
    config = small_config()
    group, name = key.split(".")
    config[group][name] = value
    with pytest.raises(FedmodelError, match=fragment):
        settings_from_dict(config)


def test_privacy_modes_agree_with_the_settings_they_describe() -> None:
    for name, mode in PRIVACY_MODES.items():
        privacy = group_settings("privacy", name)
        assert privacy_mode(privacy) is mode
        assert mode.enabled == privacy.enabled
        assert mode.client_dpsgd == privacy.record_level
        assert mode.server_noise == privacy.client_level
        # Statistics computed from records without noise leave only without DP.
        assert mode.releases_statistics == (not mode.enabled)


def test_unknown_modes_are_named_at_lookup() -> None:
    with pytest.raises(FedmodelError, match="'adapters'"):
        finetune_mode(group_settings("finetune", mode="adapters"))
    privacy = dataclasses.replace(group_settings("privacy"), mode="local")
    with pytest.raises(FedmodelError, match="'local'"):
        privacy_mode(privacy)


def test_only_federated_distillation_adds_client_rounds() -> None:
    rounds = {
        name: group_settings("distill", name, rounds=3).client_rounds
        for name in DISTILL_MODE_NAMES
    }
    assert rounds == {"off": 0, "server": 0, "federated": 3}
