"""Keys set for an option that does not read them: refused, or warned of.

Each rule names keys that only some options read (`UNREAD_RULES`, in
`unread_rules`; which are refused and which warned of is said there). A key
counts as set where its value differs from the one the chosen option's
packaged YAML gives it (a key the budget rule filled, listed in
`budget_rule_keys`, is not the user's). Accepted in silence, each would have
had no effect, and the run would not have said so: LoRA with its embeddings
still frozen, privacy=central with no example clipped, a sweep over
`partition.alpha` under partition=iid running the same split in every job.
"""

from __future__ import annotations

import functools
from typing import Any

from fedmodel.config.compose import CONF_DIR, compose_config
from fedmodel.config.flat_keys import dotted
from fedmodel.config.schema import RunSettings
from fedmodel.config.unread_rules import UNREAD_RULES, UnreadRule
from fedmodel.errors import FedmodelError

# The key of each group that names its chosen option (`finetune=lora`).
OPTION_KEYS = {
    "task": "task.name",
    "model": "model.name",
    "finetune": "finetune.mode",
    "partition": "partition.name",
    "privacy": "privacy.mode",
    "strategy": "strategy.name",
    "distill": "distill.name",
    "federation": "federation.name",
    "tracking": "tracking.name",
}


def check_unread_keys(settings: RunSettings) -> None:
    """Refuse a key set for an option that does not read it (a refused rule's)."""
    for said, fix in _unread(settings, refused=True):
        raise FedmodelError(f"{said}: {fix}")


def unread_key_warnings(settings: RunSettings) -> list[str]:
    """One line for each key of a warned rule set for an option that ignores it."""
    return [
        f"{said}, so it changes nothing in this run: {fix}"
        for said, fix in _unread(settings, refused=False)
    ]


def _unread(settings: RunSettings, *, refused: bool) -> list[tuple[str, str]]:
    """Each key of the refused (or warned) rules set where its choice ignores it."""
    shipped = _packaged(
        tuple(
            f"{g}={option}"
            for g, key in OPTION_KEYS.items()
            # A name no option file has is refused by its own check, in words
            # of its own; the group's default stands in for it here.
            if (CONF_DIR / g / f"{(option := _value(settings, key))}.yaml").is_file()
        )
    )
    return [
        unread
        for rule in UNREAD_RULES
        if rule.refused == refused
        for unread in _unread_by(settings, rule, shipped)
    ]


def _unread_by(
    settings: RunSettings, rule: UnreadRule, shipped: dict[str, Any]
) -> list[tuple[str, str]]:
    """Each of `rule`'s keys set where its choice ignores it: what, and the fix."""
    chosen = _value(settings, rule.choice)
    if chosen in rule.readers:
        return []
    group = rule.choice.split(".")[0]
    # An option by its group's name (finetune=head), any other key by its own.
    named = group if OPTION_KEYS.get(group) == rule.choice else rule.choice
    readers = [f"{named}={_option(reader)}" for reader in rule.readers]
    return [
        (
            f"{key}={_shown(value)} is set, but {named}={_option(chosen)} does not "
            "read it "
            f"(only {' and '.join(readers)} {rule.does})",
            f"choose {' or '.join(readers)}, or drop {key}",
        )
        for key in rule.keys
        if (value := _value(settings, key)) != shipped[key]
        and key not in settings.budget_rule_keys
    ]


def _value(settings: RunSettings, key: str) -> Any:
    return functools.reduce(getattr, key.split("."), settings)


@functools.cache
def _packaged(options: tuple[str, ...]) -> dict[str, Any]:
    """The dotted keys the chosen options' packaged YAML gives, in one compose.

    One compose of every group's choice (about 0.2 s; a run's processes each
    check their settings once) rather than one per group.
    """
    return dotted(compose_config(list(options)))


def _shown(value: Any) -> str:
    """`value` as an override writes it: true, 0.5, 'ghost', [query, value]."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _option(value: str | bool) -> str:
    """A choice as an override writes it: head, not 'head'; false, not False."""
    return value if isinstance(value, str) else _shown(value)
