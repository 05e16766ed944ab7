"""A nested config as dotted keys, the way a user types them as overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dotted(config: Mapping[str, Any]) -> dict[str, Any]:
    """Each leaf value of `config` under its dotted key (`privacy.target_epsilon`)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
            return
        flat[prefix] = value

    walk("", config)
    return flat
