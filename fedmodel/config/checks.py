"""Build typed settings from a nested config and check them, naming any bad key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fedmodel.config.budget_rule import with_budget_defaults
from fedmodel.config.file_paths import with_absolute_paths
from fedmodel.config.modes import (
    ACCOUNTANT_NAMES,
    DISTILL_MODE_NAMES,
    DISTILL_PRECISION_NAMES,
    FINETUNE_MODE_NAMES,
    GRAD_SAMPLE_MODE_NAMES,
    OPTIMIZER_NAMES,
    PRIVACY_MODE_NAMES,
    ROBUST_METHOD_NAMES,
    STRATEGY_NAMES,
    TRACKER_NAMES,
)
from fedmodel.config.number_rules import check_numbers
from fedmodel.config.round_size import check_min_replies
from fedmodel.config.schema import RunSettings
from fedmodel.config.train_files import with_train_files
from fedmodel.config.typed_build import build_typed
from fedmodel.config.unread_keys import check_unread_keys
from fedmodel.errors import FedmodelError


def settings_from_dict(raw: Mapping[str, Any]) -> RunSettings:
    """Build typed settings from a nested config, naming any bad key.

    Before the settings are built, in this order: every data file's path is
    made absolute, from the working directory (`with_absolute_paths`);
    task=files' patterns in `task.train_files` are expanded and its null
    `num_clients` counts the files (`with_train_files`); then the keys the
    YAML leaves null (or `auto`) that follow the privacy budget are filled
    (`with_budget_defaults`). A value the user set always wins.
    """
    filled = with_budget_defaults(with_train_files(with_absolute_paths(dict(raw))))
    settings = build_typed(RunSettings, filled, path="")
    check_numbers(settings)  # every number finite and in range (number_rules.py)
    _check(settings)
    return settings


def _check(settings: RunSettings) -> None:
    """Names against their registries, and rules that tie keys together.

    Each number's own range is checked before, by `check_numbers`.
    """
    _check_name("finetune.mode", settings.finetune.mode, FINETUNE_MODE_NAMES)
    _check_name("finetune.optimizer", settings.finetune.optimizer, OPTIMIZER_NAMES)
    _check_name("privacy.mode", settings.privacy.mode, PRIVACY_MODE_NAMES)
    _check_name("distill.name", settings.distill.name, DISTILL_MODE_NAMES)
    _check_name("tracking.name", settings.tracking.name, TRACKER_NAMES)
    _check_name("strategy.name", settings.strategy.name, STRATEGY_NAMES)
    method = settings.strategy.robust_method
    _check_name("strategy.robust_method", method, ROBUST_METHOD_NAMES)
    if settings.task.label_descriptions is not None and not settings.label_init:
        raise FedmodelError(
            "task.label_descriptions is set but label_init is false: only the "
            "label start reads the descriptions; set label_init=true or drop "
            "task.label_descriptions"
        )
    _check_labels(settings.task.labels)
    _check_files_keys(settings)
    check_unread_keys(settings)
    _check_distill(settings)
    _check_device(settings)
    _check_audit(settings)
    _check_privacy(settings)
    check_min_replies(settings)


def _check_labels(labels: list[str] | None) -> None:
    # Refused, not mended: the config would name one label, the run use another.
    for i, label in enumerate(labels or ()):
        if not label or label != label.strip():
            fix = f"write {label.strip()!r} or drop it" if label.strip() else "drop it"
            raise FedmodelError(
                f"task.labels[{i}]={label!r}: labels read from files are stripped of "
                f"surrounding spaces and never empty, so no record can hold it; {fix}"
            )


def _check_files_keys(settings: RunSettings) -> None:
    """Files and labels (task=files only) given to a task that would drop them."""
    task = settings.task
    if task.name == "files":
        return
    named = {
        "task.train_files": task.train_files,
        "task.test_file": task.test_file,
        "task.validation_file": task.validation_file,
        "task.labels": task.labels,
    }
    for key, value in named.items():
        if value:
            raise FedmodelError(
                f"{key} is set, but task={task.name} does not read it (only "
                f"task=files does): add task=files to train on your files, or "
                f"drop {key}"
            )


def _check_name(key: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise FedmodelError(f"{key} must be one of {list(accepted)}, got {value!r}")


def _check_privacy(settings: RunSettings) -> None:
    privacy = settings.privacy
    if not privacy.enabled:
        return
    if privacy.target_epsilon is None:
        raise FedmodelError(
            "privacy.target_epsilon must be a positive number with DP on, got "
            f"{privacy.target_epsilon!r}"
        )
    if privacy.record_level and privacy.max_grad_norm is None:
        raise FedmodelError(
            "privacy.max_grad_norm must be a positive number with DP on, got "
            f"{privacy.max_grad_norm!r}"
        )
    _check_name("privacy.accountant", privacy.accountant, ACCOUNTANT_NAMES)
    if privacy.record_level:
        _check_name(
            "privacy.grad_sample_mode",
            str(privacy.grad_sample_mode),
            GRAD_SAMPLE_MODE_NAMES,
        )


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def _check_device(settings: RunSettings) -> None:
    if not DEVICE_PATTERN.fullmatch(settings.device):
        raise FedmodelError(
            f"device must be auto, cpu, cuda or cuda:N, got {settings.device!r}"
        )


def _check_distill(settings: RunSettings) -> None:
    distill = settings.distill
    if not distill.enabled:
        return
    _check_name("distill.precision", distill.precision, DISTILL_PRECISION_NAMES)
    student = distill.student
    if student.layers is not None and len(student.layers) != student.num_layers:
        raise FedmodelError(
            f"distill.student.layers {student.layers} names {len(student.layers)} "
            f"layers but distill.student.num_layers is {student.num_layers}"
        )
    if distill.name == "federated" and settings.privacy.client_level:
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


def _check_audit(settings: RunSettings) -> None:
    audit = settings.audit
    if audit.canaries and not 0 <= audit.client < settings.num_clients:
        raise FedmodelError(
            f"audit.client={audit.client} is not a client of this run: choose one "
            f"of 0..{settings.num_clients - 1}"
        )
