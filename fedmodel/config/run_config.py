"""The Hydra <-> Flower run-config bridge: the only place keys change case."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

_JSON_PREFIX = "json:"

RunConfig = dict[str, bool | int | float | str]

# The run-config keys of fedmodel's Flower app (`fedmodel flwr-app`) and their
# defaults: `flwr run` passes these, where `fedmodel simulate` passes the whole
# flattened config. "overrides" holds Hydra overrides; "" for "run-dir" means
# outputs/<date>/<time>-flwr-<task>.
FLWR_RUN_CONFIG: dict[str, str] = {"overrides": "", "run-dir": ""}
# How a run under `flwr run` is given its run folder (never `run_dir=`).
FLWR_RUN_FOLDER = (
    "under flwr run the run-config's run-dir names it, beside overrides: "
    "--run-config \"overrides='...' run-dir='DIR'\""
)


def is_app_run_config(run_config: Mapping[str, Any]) -> bool:
    """Whether `run_config` holds only the app's keys, as `flwr run` passes them.

    `fedmodel simulate` passes the whole config, flattened, instead.
    """
    return set(run_config) <= set(FLWR_RUN_CONFIG)


def app_overrides(run_config: Mapping[str, Any]) -> list[str] | None:
    """The Hydra overrides `flwr run` passed; None where `fedmodel simulate` did."""
    if not is_app_run_config(run_config):
        return None
    return shlex.split(str(run_config.get("overrides", "")))


def to_run_config(raw: Mapping[str, Any]) -> RunConfig:
    """Flatten a nested snake_case config into Flower's kebab-case run-config.

    Lists, maps and nulls, which Flower records cannot hold, travel as JSON
    strings with a `json:` prefix.
    """
    flat: RunConfig = {}
    for key, value in raw.items():
        name = key.replace("_", "-")
        if isinstance(value, Mapping) and key not in _JSON_LEAVES:
            for sub_key, sub_value in to_run_config(value).items():
                flat[f"{name}.{sub_key}"] = sub_value
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = _JSON_PREFIX + json.dumps(value)
    return flat


# Map-valued settings that are leaves, not config groups.
_JSON_LEAVES = frozenset({"label_groups"})


def from_run_config(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the nested snake_case config that `to_run_config` flattened."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = [part.replace("-", "_") for part in key.split(".")]
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, str) and value.startswith(_JSON_PREFIX):
            value = json.loads(value[len(_JSON_PREFIX) :])
        node[parts[-1]] = value
    return nested
