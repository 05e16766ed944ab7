"""Settings that follow the privacy budget: values for keys left `null` (or `auto`).

DP-SGD's noise grows as the budget shrinks, and the step that suits epsilon 8
overshoots at epsilon 1. So the local learning rate, expected batch size,
local epochs, whether the head's bias trains, the clipping norm and the
per-example clipping method (`BUDGET_KEYS`) are looked up from the run's
target epsilon when the YAML leaves them `null`. A value the user sets
always wins.

The rule reads the target epsilon and nothing else: no record, no split, not
even the clients' record counts. That keeps it a fixed point: the batch size
and epochs it picks change each client's sample rate and step count, and so
the noise its plan calibrates, but not the row the rule picks. It runs inside
`settings_from_dict`, before any plan is calibrated, so the settings every
party builds, the plan `fedmodel privacy-plan` shows and the resolved config a
run writes all hold the same values. The resolved config lists the keys the
rule filled (`budget_rule_keys`): a deployed site whose cap is below the
server's target takes the rule's values for its cap in exactly those. The
rows the rule picks from are its table (`budget_table.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fedmodel.config.budget_table import MEASURED_FROM_EPSILON, BudgetRow, budget_row
from fedmodel.config.schema import RunSettings
from fedmodel.errors import FedmodelError

AUTO = "auto"
# (config group, key) pairs the rule may fill.
BUDGET_KEYS = (
    ("finetune", "learning_rate"),
    ("finetune", "batch_size"),
    ("finetune", "local_epochs"),
    ("finetune", "train_head_bias"),
    ("privacy", "max_grad_norm"),
    ("privacy", "grad_sample_mode"),
)
_DOTTED_KEYS = tuple(f"{group}.{key}" for group, key in BUDGET_KEYS)
# The resolved config's list of the dotted keys the rule filled, so every party
# (the server, a site under a lower cap, `fedmodel privacy-plan`) tells the
# rule's values from the user's without comparing values: a user may set one
# equal to the rule's, and it stays theirs.
RULE_KEYS = "budget_rule_keys"


def unmeasured_budget(settings: RunSettings) -> str | None:
    """A line for a DP-SGD head run the rule serves below the budgets measured.

    None for other runs: other modes, a target measured, no key left to the rule.
    """
    epsilon = settings.privacy.target_epsilon
    if (
        settings.finetune.mode != "head"
        or not settings.privacy.record_level
        or not settings.budget_rule_keys
        or epsilon is None
        or epsilon >= MEASURED_FROM_EPSILON
    ):
        return None
    return (
        f"privacy.target_epsilon={epsilon:g} is below {MEASURED_FROM_EPSILON:g}, "
        "the smallest budget the budget rule was measured at "
        f"(docs/strict-budgets.md): {', '.join(settings.budget_rule_keys)} take "
        f"the values measured at {MEASURED_FROM_EPSILON:g}, and the accuracy they "
        f"reach at {epsilon:g} is unknown. Set them to choose otherwise"
    )


def derived_keys(raw: Mapping[str, Any]) -> list[str]:
    """The dotted keys the rule fills in a composed config (null or `auto`)."""
    keys = []
    for group, key in BUDGET_KEYS:
        section = raw.get(group)
        if isinstance(section, Mapping) and key in section and _is_auto(section[key]):
            if key == "max_grad_norm" and not _noised_locally(raw):
                continue
            keys.append(f"{group}.{key}")
    return keys


def with_budget_defaults(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a composed config with the rule's values in its null keys.

    `privacy.max_grad_norm` is filled only under DP-SGD (record-level), where
    clipping is per example; other privacy modes keep it null (`auto` too). Under
    privacy=central the clients add no noise and take the last row; under
    privacy=off they take the mode's `OFF_ROWS` row where it has one. The keys
    filled are added to the config's `budget_rule_keys` (`RULE_KEYS`).
    """
    filled = copy.deepcopy(dict(raw))
    privacy = filled.get("privacy")
    if isinstance(privacy, dict) and not _noised_locally(filled):
        if _is_auto(privacy.get("max_grad_norm", 0)):  # no per-example clipping
            privacy["max_grad_norm"] = None
    keys = derived_keys(filled)
    if keys:
        row = _checked_row(filled)
        finetune_mode = filled.get("finetune", {}).get("mode")
        for dotted in keys:
            group, key = dotted.split(".")
            if (value := getattr(row, key)) is None:
                raise FedmodelError(  # as written: auto or null
                    f"{dotted}={filled[group][key] or 'null'} asks the budget rule "
                    f"for a value, but finetune={finetune_mode} has no rule for it: "
                    f"set {dotted} (to switch modes, pick the group, finetune="
                    f"{finetune_mode}, not finetune.mode=: the group brings the "
                    "mode's own settings)"
                )
            filled[group][key] = value
    if RULE_KEYS in filled:  # absent: building the settings names the key
        filled[RULE_KEYS] = _recorded_keys(filled, keys)
    return filled


def _recorded_keys(filled: Mapping[str, Any], keys: list[str]) -> Any:
    """The config's `budget_rule_keys` and the keys just filled, in rule order.

    A config resolved before (a round's, a run folder's) arrives with its list
    and no null left. Each key it lists must be one the rule fills and still
    hold the rule's value for this config: anything else was not the rule's.
    """
    listed = filled[RULE_KEYS]
    if not isinstance(listed, list | tuple):
        return listed  # building the settings names the type
    row = _checked_row(filled) if listed else None
    for dotted in map(str, listed):
        if dotted not in _DOTTED_KEYS:
            raise FedmodelError(
                f"{RULE_KEYS} names {dotted!r}, which the budget rule does not "
                f"fill (it fills {list(_DOTTED_KEYS)}): leave {RULE_KEYS} at [] "
                "and set a key to null to have the rule fill it"
            )
        group, key = dotted.split(".")
        section = filled.get(group)
        value = section.get(key) if isinstance(section, Mapping) else None
        rule = getattr(row, key)
        if value != rule:
            raise FedmodelError(
                f"{RULE_KEYS} names {dotted!r}, but its value {value!r} is not "
                f"the budget rule's ({rule!r}) at this budget: leave {RULE_KEYS} "
                f"at [] (resolving the config fills it) and set {dotted} to null "
                "to follow the rule"
            )
    recorded = {*map(str, listed), *keys}
    return [dotted for dotted in _DOTTED_KEYS if dotted in recorded]


def _checked_row(raw: Mapping[str, Any]) -> BudgetRow:
    """`config_row`, once the target epsilon the row depends on is a number."""
    epsilon = _local_epsilon(raw)
    if epsilon is not None and (
        isinstance(epsilon, bool) or not isinstance(epsilon, int | float)
    ):
        # Named here: the rule's keys would otherwise stay null, and the type
        # check would name one of them instead.
        how = (
            " (a sweep: fedmodel simulate --multirun privacy.target_epsilon=1,3,8;"
            " privacy-plan plans one value at a time)"
            if isinstance(epsilon, list | tuple)
            else "; set privacy.target_epsilon= a number > 0"
        )
        message = f"config key 'privacy.target_epsilon' must be a number: {epsilon!r}"
        raise FedmodelError(message + how)
    return config_row(raw)


def config_row(raw: Mapping[str, Any]) -> BudgetRow:
    """The rule's row for a config (composed or resolved): its mode and budget.

    The target epsilon counts only under DP-SGD; other privacy modes add no
    local noise.
    """
    return budget_row(
        finetune_mode=str(raw.get("finetune", {}).get("mode")),
        target_epsilon=_local_epsilon(raw),
        privacy_mode=str(raw.get("privacy", {}).get("mode")),
    )


def _local_epsilon(raw: Mapping[str, Any]) -> Any:
    """The target epsilon where clients add DP noise themselves; None elsewhere."""
    return raw["privacy"].get("target_epsilon") if _noised_locally(raw) else None


def _noised_locally(raw: Mapping[str, Any]) -> bool:
    privacy = raw.get("privacy")
    return isinstance(privacy, Mapping) and privacy.get("mode") == "dpsgd"


def _is_auto(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.lower() == AUTO)
