"""Typed run settings and the Hydra <-> Flower run-config bridge.

Hydra composes a nested config with snake_case keys; Flower's run-config and
ConfigRecords hold flat, kebab-case scalars. This module is the only place keys
change case, and the only place a dict becomes typed settings.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fedmodel.errors import FedmodelError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
_JSON_PREFIX = "json:"

RunConfig = dict[str, bool | int | float | str]
T = TypeVar("T")


@dataclass(frozen=True)
class TaskSettings:
    """Which records the clients and the server hold."""

    name: str
    max_length: int = 64
    val_fraction: float = 0.1
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    max_per_chapter: int = 1000
    min_per_chapter: int = 50
    test_fraction: float = 0.2
    transfer_fraction: float = 0.05
    train_files: list[str] = field(default_factory=list)
    test_file: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] | None = None
    # Seeds the task's own splits and caps; None follows the run seed.
    split_seed: int | None = None


@dataclass(frozen=True)
class ModelSettings:
    """The shared encoder and its classification head."""

    name: str
    path: str
    pooling: str = "mean"
    normalize: bool = False
    dropout: float = 0.1
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 64


@dataclass(frozen=True)
class FinetuneSettings:
    """What local training moves, and how."""

    mode: str
    optimizer: str
    learning_rate: float
    batch_size: int
    local_epochs: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    train_embeddings: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["query", "value"])


@dataclass(frozen=True)
class PartitionSettings:
    """How the training records are split across clients."""

    name: str
    alpha: float = 0.5
    min_partition_size: int = 10
    column: str | None = None
    label_groups: dict[str, str] | None = None


@dataclass(frozen=True)
class PrivacySettings:
    """Record-level DP-SGD settings, per client."""

    mode: str
    target_epsilon: float | None = None
    target_delta: float | None = None
    max_grad_norm: float | None = None
    accountant: str = "rdp"
    # privacy=central only: Flower's server-side adaptive clipping.
    initial_clipping_norm: float = 0.1
    target_clipped_quantile: float = 0.5
    clip_norm_lr: float = 0.2
    clipped_count_stddev: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether any differential privacy is on (record- or client-level)."""
        return self.mode != "off"

    @property
    def record_level(self) -> bool:
        """Whether each client runs DP-SGD (local, record-level DP)."""
        return self.mode == "dpsgd"

    @property
    def client_level(self) -> bool:
        """Whether the server adds client-level DP (central DP)."""
        return self.mode == "central"


@dataclass(frozen=True)
class StrategySettings:
    """Server-side aggregation."""

    name: str
    fraction_train: float = 1.0
    min_train_clients: int = 2
    proximal_mu: float = 0.0
    eta: float = 0.01
    eta_l: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 0.001
    robust_method: str = "median"
    trim_beta: float = 0.2


@dataclass(frozen=True)
class StudentSettings:
    """The smaller model the teacher is distilled into."""

    num_layers: int = 2
    # Teacher layers the student starts from (0-based); None spreads
    # `num_layers` evenly from the first layer to the last.
    layers: list[int] | None = None


@dataclass(frozen=True)
class DistillSettings:
    """Distillation of the federated teacher into a student."""

    name: str
    student: StudentSettings = field(default_factory=StudentSettings)
    temperature: float = 2.0
    # Loss = kl_weight * KL(teacher || student at temperature) * T^2
    #      + hidden_weight * (1 - cosine(student, teacher pooled vectors)).
    kl_weight: float = 1.0
    hidden_weight: float = 1.0
    epochs: int = 4
    learning_rate: float = 1e-4
    batch_size: int = 32
    # Extra copies of each transfer text with words dropped and swapped.
    augment_copies: int = 4
    # Texts the server holds for distillation (CSV/JSONL/Parquet/TXT); None
    # uses the task's transfer split.
    transfer_file: str | None = None
    # distill=federated: rounds in which clients distil the student on their
    # own records under DP-SGD, after the teacher's rounds.
    rounds: int = 0

    @property
    def enabled(self) -> bool:
        """Whether a student is trained at all."""
        return self.name != "off"


@dataclass(frozen=True)
class FederationSettings:
    """Where the clients run."""

    name: str
    cpus_per_client: float = 1.0
    round_timeout: float = 3600.0


@dataclass(frozen=True)
class WarmStartSettings:
    """Fitting the head on the server's own labelled transfer split first."""

    enabled: bool = False
    epochs: int = 30
    learning_rate: float = 2.0
    batch_size: int = 64


@dataclass(frozen=True)
class AuditSettings:
    """Canary records planted in one client's training split, for `fedmodel audit`."""

    canaries: int = 0
    client: int = 0
    reference_canaries: int = 100


@dataclass(frozen=True)
class TrackingSettings:
    """Where a run's config, metrics and artifacts are also logged."""

    name: str = "none"
    uri: str | None = None
    experiment: str = "fedmodel"


@dataclass(frozen=True)
class RunSettings:
    """Everything one federated run needs, typed."""

    task: TaskSettings
    model: ModelSettings
    finetune: FinetuneSettings
    partition: PartitionSettings
    privacy: PrivacySettings
    strategy: StrategySettings
    distill: DistillSettings
    federation: FederationSettings
    num_clients: int
    num_rounds: int
    seed: int
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    checkpoint_every_round: bool = True
    run_dir: str = ""
    resume: bool = False
    audit: AuditSettings = field(default_factory=AuditSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)


def settings_from_dict(raw: Mapping[str, Any]) -> RunSettings:
    """Build typed settings from a nested config, naming any bad key."""
    settings = _build(RunSettings, raw, path="")
    _check(settings)
    return settings


def _build(cls: type[T], raw: Mapping[str, Any], *, path: str) -> T:
    if not isinstance(raw, Mapping):
        raise FedmodelError(f"config key '{path}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f" under '{path}'" if path else ""
        raise FedmodelError(
            f"unknown config key(s) {unknown}{where}; known keys: {sorted(fields)}"
        )
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in raw:
            no_default = (
                spec.default is dataclasses.MISSING
                and spec.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise FedmodelError(f"config key '{key}' is missing")
            continue
        values[name] = _coerce(hints[name], raw[name], key=key)
    return cls(**values)


def _coerce(hint: Any, value: Any, *, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _coerce(inner[0], value, key=key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path=key)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list | tuple):
            raise FedmodelError(f"config key '{key}' must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise FedmodelError(f"config key '{key}' must be a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise FedmodelError(f"config key '{key}' must be true or false: {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FedmodelError(f"config key '{key}' must be an integer: {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FedmodelError(f"config key '{key}' must be a number: {value!r}")
        return float(value)
    if hint is str:
        if value is None or isinstance(value, Mapping | list):
            raise FedmodelError(f"config key '{key}' must be a string: {value!r}")
        return str(value)
    return value


def _check(settings: RunSettings) -> None:
    """Range checks that a type alone cannot express."""
    if settings.num_clients < 1:
        raise FedmodelError(f"num_clients must be >= 1, got {settings.num_clients}")
    if settings.num_rounds < 1:
        raise FedmodelError(f"num_rounds must be >= 1, got {settings.num_rounds}")
    if settings.finetune.batch_size < 1:
        raise FedmodelError(
            f"finetune.batch_size must be >= 1, got {settings.finetune.batch_size}"
        )
    if settings.finetune.local_epochs < 1:
        raise FedmodelError(
            f"finetune.local_epochs must be >= 1, got {settings.finetune.local_epochs}"
        )
    if not 0.0 <= settings.task.val_fraction < 1.0:
        raise FedmodelError(
            f"task.val_fraction must be in [0, 1), got {settings.task.val_fraction}"
        )
    _check_distill(settings)
    privacy = settings.privacy
    if privacy.mode not in PRIVACY_MODES:
        raise FedmodelError(
            f"privacy.mode must be one of {list(PRIVACY_MODES)}, got {privacy.mode!r}"
        )
    _check_audit(settings)
    if settings.tracking.name not in ("none", "mlflow"):
        raise FedmodelError(
            f"tracking.name must be 'none' or 'mlflow', got {settings.tracking.name!r}"
        )
    if privacy.enabled:
        if privacy.target_epsilon is None or privacy.target_epsilon <= 0:
            raise FedmodelError(
                "privacy.target_epsilon must be a positive number with DP on, got "
                f"{privacy.target_epsilon!r}"
            )
        dpsgd_norm = privacy.max_grad_norm
        if privacy.record_level and (dpsgd_norm is None or dpsgd_norm <= 0):
            raise FedmodelError(
                "privacy.max_grad_norm must be a positive number with DP on, got "
                f"{privacy.max_grad_norm!r}"
            )
        if privacy.target_delta is not None and not 0 < privacy.target_delta < 1:
            raise FedmodelError(
                f"privacy.target_delta must be in (0, 1), got {privacy.target_delta}"
            )
        if privacy.accountant not in ("rdp", "prv"):
            raise FedmodelError(
                f"privacy.accountant must be 'rdp' or 'prv', got {privacy.accountant!r}"
            )


DISTILL_MODES = ("off", "server", "federated")


def _check_distill(settings: RunSettings) -> None:
    distill = settings.distill
    if distill.name not in DISTILL_MODES:
        raise FedmodelError(
            f"distill.name must be one of {DISTILL_MODES}, got {distill.name!r}"
        )
    if not distill.enabled:
        return
    student = distill.student
    if student.num_layers < 1:
        raise FedmodelError(
            f"distill.student.num_layers must be >= 1, got {student.num_layers}"
        )
    if student.layers is not None and len(student.layers) != student.num_layers:
        raise FedmodelError(
            f"distill.student.layers {student.layers} names {len(student.layers)} "
            f"layers but distill.student.num_layers is {student.num_layers}"
        )
    for key in ("temperature", "learning_rate"):
        if not getattr(distill, key) > 0:
            raise FedmodelError(
                f"distill.{key} must be > 0, got {getattr(distill, key)}"
            )
    for key in ("epochs", "batch_size"):
        if getattr(distill, key) < 1:
            raise FedmodelError(
                f"distill.{key} must be >= 1, got {getattr(distill, key)}"
            )
    for key in ("kl_weight", "hidden_weight", "augment_copies", "rounds"):
        if getattr(distill, key) < 0:
            raise FedmodelError(
                f"distill.{key} must be >= 0, got {getattr(distill, key)}"
            )
    if distill.name == "federated" and settings.privacy.mode == "central":
        raise FedmodelError(
            "distill=federated cannot be combined with privacy=central: the "
            "student's rounds would not get the server's client-level noise. Use "
            "privacy=dpsgd (charged to each client's ledger) or distill=server"
        )
    if distill.name == "federated" and distill.rounds < 1:
        raise FedmodelError(
            "distill=federated needs distill.rounds >= 1 (the student's rounds "
            f"on the clients), got {distill.rounds}"
        )


PRIVACY_MODES = ("off", "dpsgd", "central")


def _check_audit(settings: RunSettings) -> None:
    audit = settings.audit
    if audit.canaries < 0 or audit.reference_canaries < 0:
        raise FedmodelError(
            "audit.canaries and audit.reference_canaries must be >= 0, got "
            f"{audit.canaries} and {audit.reference_canaries}"
        )
    if audit.canaries and not 0 <= audit.client < settings.num_clients:
        raise FedmodelError(
            f"audit.client={audit.client} is not a client of this run: choose one "
            f"of 0..{settings.num_clients - 1}"
        )


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
