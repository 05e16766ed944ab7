"""Run settings: the packaged YAML composed by Hydra, typed and checked.

`compose_config` composes `fedmodel/conf`; `settings_from_dict` builds the
typed `RunSettings` from it and checks every value; `to_run_config` and
`from_run_config` carry it through Flower's flat run-config.
"""

from fedmodel.config.checks import settings_from_dict
from fedmodel.config.compose import CONF_DIR, compose_config
from fedmodel.config.run_config import RunConfig, from_run_config, to_run_config
from fedmodel.config.schema import (
    AuditSettings,
    DistillSettings,
    FederationSettings,
    FinetuneSettings,
    LatencySettings,
    ModelSettings,
    PartitionSettings,
    PrivacySettings,
    RunSettings,
    StrategySettings,
    StudentSettings,
    TaskSettings,
    TrackingSettings,
    WarmStartSettings,
)

__all__ = [
    "CONF_DIR",
    "AuditSettings",
    "DistillSettings",
    "FederationSettings",
    "FinetuneSettings",
    "LatencySettings",
    "ModelSettings",
    "PartitionSettings",
    "PrivacySettings",
    "RunConfig",
    "RunSettings",
    "StrategySettings",
    "StudentSettings",
    "TaskSettings",
    "TrackingSettings",
    "WarmStartSettings",
    "compose_config",
    "from_run_config",
    "settings_from_dict",
    "to_run_config",
]
