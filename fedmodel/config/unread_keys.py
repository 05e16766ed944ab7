"""Keys set for an option that does not read them: refused, or warned of.

Each rule names keys that only some options read (`UNREAD_RULES`, in
`unread_rules`; which are refused and which warned of is said there). A key
counts as set where its value differs from the one the chosen options'
packaged YAML gives it, a preset's (`debug=smoke`) among them (a key the
budget rule filled, listed in `budget_rule_keys`, is not the user's).
Accepted in silence, each would have had no effect, and the run would not
have said so: LoRA with its embeddings still frozen, privacy=central with no
example clipped, a sweep over `partition.alpha` under partition=iid running
the same split in every job.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from fedmodel.config.compose import (
    CONF_DIR,
    OPTION_KEYS,
    compose_config,
    override_parser,
)
from fedmodel.config.flat_keys import dotted
from fedmodel.config.schema import RunSettings
from fedmodel.config.unread_rules import UNREAD_RULES, UnreadRule
from fedmodel.errors import FedmodelError

# Groups of presets over other groups' keys (`# @package _global_`): no key
# of the settings names their choice, so the overrides composed are read.
PRESET_GROUPS = ("debug", "experiment")


def check_unread_keys(settings: RunSettings) -> None:
    """Refuse a key set for an option that does not read it (a refused rule's)."""
    # No preset sets a refused rule's key (test_unread_keys), so every party,
    # whatever overrides it was given, refuses the same settings alike.
    for said, fix in _unread(settings, refused=True, presets=()):
        raise FedmodelError(f"{said}: {fix}")


def unread_key_warnings(
    settings: RunSettings, *, overrides: Iterable[str]
) -> list[str]:
    """One line for each key of a warned rule set for an option that ignores it.

    `overrides`: those the settings were composed with, whose presets' values
    are packaged, not the user's.
    """
    return [
        f"{said}, so it changes nothing in this run: {fix}"
        for said, fix in _unread(settings, refused=False, presets=_presets(overrides))
    ]


def _presets(overrides: Iterable[str]) -> tuple[str, ...]:
    """The presets `overrides` choose, as overrides: `debug=smoke`."""
    chosen = (
        (override.key_or_group, override.value())
        for override in override_parser().parse_overrides(list(overrides))
    )
    return tuple(
        f"{group}={option}"
        for group, option in chosen
        if group in PRESET_GROUPS and _is_group_file(group, option)
    )


def _unread(
    settings: RunSettings, *, refused: bool, presets: tuple[str, ...]
) -> list[tuple[str, str]]:
    """Each key of the refused (or warned) rules set where its choice ignores it."""
    shipped = _packaged(
        tuple(
            f"{g}={option}"
            for g, key in OPTION_KEYS.items()
            # A name no option file has is refused by its own check, in words
            # of its own; the group's default stands in for it here.
            if _is_group_file(g, option := _value(settings, key))
        )
        + presets
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


def _is_group_file(group: str, name: Any) -> bool:
    """Whether `group` has a file `name`.yaml: an option, or its shared keys.

    Not `compose.is_option`, which tells those two apart.
    """
    return (CONF_DIR / group / f"{name}.yaml").is_file()


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
