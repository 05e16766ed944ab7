"""A key given twice among a command's overrides: refused, naming every value.

Hydra takes the last of two overrides of one key without a word, so a
command pasted with an override appended (`model=nope ... model=tiny`, or
`finetune.learning_rate=0.1 ... finetune.learning_rate=0.3`) ran with a value
its user may not have read. A key is the group or dotted key Hydra reads
(with its `@package`), whatever its prefix: `+a.b=1` and `a.b=2` set one key,
and so do `a.b=1` and `~a.b`. The same value given again is taken: it
composes the same config whichever counts. A sweep (`a=1,2`) is one override.

Each command asks it of the overrides a user gave it, before composing:
`simulate` (and `resume`, whose own keys never repeat a stored one:
`continue_argv`), `privacy-plan`, and a `flwr run` run-config's overrides.
`compose_config` does not: its callers (tests, benchmarks) lay overrides
over a base list, the later winning as in Hydra.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fedmodel.config.compose import parsed_overrides
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def refuse_repeated_keys(overrides: Iterable[str]) -> None:
    """Refuse a key `overrides` give twice, naming each of its overrides in order.

    The first such key is named. Overrides Hydra cannot parse are left to
    Hydra, which names them.
    """
    given: dict[str, list[tuple[str, Override]]] = {}
    for text, override in parsed_overrides(overrides):
        given.setdefault(_key(override), []).append((text, override))
    for key, pairs in given.items():
        if len({_value(override) for _, override in pairs}) > 1:
            named = " then ".join(text for text, _ in pairs)
            count = len(pairs)
            raise FedmodelError(
                f"{key} is given {count} {plural(count, 'time')} ({named}), and "
                f"Hydra would take the last without a word: give {key} once"
            )


def _key(override: Override) -> str:
    """The group or dotted key `override` names, with its `@package` if any."""
    key = override.key_or_group
    return key if override.package is None else f"{key}@{override.package}"


def _value(override: Override) -> str:
    """What `override` makes of its key, comparable across overrides.

    Written as Python writes the parsed value, so `1`, `1.0` and `'1'` differ
    as the config they compose does; a deletion differs from every value.
    """
    return "~" if override.is_delete() else repr(override.value())
