"""Compose the packaged Hydra config outside a Hydra app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmodel.errors import FedmodelError

# The YAML ships inside the package, so a wheel install composes the same config.
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose conf/ with Hydra overrides, outside of a Hydra app."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides or [])
    except HydraException as exc:
        raise FedmodelError(f"bad config override in {overrides}: {exc}") from exc
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items() if k != "hydra"}
