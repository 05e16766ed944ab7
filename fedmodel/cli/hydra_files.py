"""Hydra's overrides that name or continue a run folder, read by Hydra's own parser.

`hydra.run.dir=RUN` is a Hydra override, and a folder's path can hold what
Hydra's override grammar reads as syntax: the override is quoted where needed.
Which key an override sets, and whether it adds or deletes it, is read by
Hydra's own parser (`override_key`): quotes, `@package` and all. What a
refused start puts back in the folder's .hydra files is `refused_folder.py`.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.config.compose import override_parser
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_manifest import RESUME_KEY

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

# The override that names the run folder of a single run.
RUN_DIR_KEY = "hydra.run.dir"
# The override that names a --multirun sweep's folder.
SWEEP_DIR_KEY = "hydra.sweep.dir"
# Overrides a continuing start sets itself, dropped from the stored ones.
SET_BY_RESUME = (RESUME_KEY, RUN_DIR_KEY)
# The prefixes of Hydra's add and force-add overrides (`+key=`, `++key=`).
ADDS = ("+", "++")
# Hydra's settings that say how a launch ran, not what the run is: these keys
# and those under them. A start that continues the run leaves them out.
LAUNCH_KEYS = ("hydra.mode", "hydra.sweep")
# What a shell reads as syntax inside double quotes (`!`: bash's history); a
# backslash only before one of $ ` " \ or a newline, or the closing quote.
LIVE_IN_DOUBLE_QUOTES = re.compile(r'[$`"!]|\\([$`"\\\n]|$)')


@dataclass(frozen=True)
class OverrideKey:
    """The key (or config group) an override names, and what it does to it."""

    # A dotted key or a config group, with its `@package` where one is named.
    key: str
    # "" (sets it), "+" (adds it), "++" (force-adds it) or "~" (deletes it).
    prefix: str
    # hydra.* or hydra/*: Hydra's own, which it keeps out of overrides.yaml.
    hydras: bool


@functools.lru_cache(maxsize=1024)
def override_key(override: str) -> OverrideKey | None:
    """The key `override` names, as Hydra reads it; None where Hydra cannot.

    Hydra names an override it cannot parse when the app runs. Each is read
    once (`continue_argv` reads a resume's overrides once per one it adds).
    """
    parsed = _parsed(override)
    if parsed is None:
        return None
    key = parsed.key_or_group
    if parsed.package is not None:
        key += f"@{parsed.package}"
    return OverrideKey(
        key=key,
        prefix=parsed.get_key_element().removesuffix(key),
        hydras=parsed.is_hydra_override(),
    )


def of_the_launch(override: str) -> bool:
    """Whether `override` sets one of the LAUNCH_KEYS (or a key under one)."""
    key = override_key(override)
    return key is not None and any(
        key.key == launch or key.key.startswith(f"{launch}.") for launch in LAUNCH_KEYS
    )


def task_overrides(overrides: Sequence[str]) -> list[str]:
    """`overrides` but Hydra's own (kept: one Hydra cannot parse, for it to name)."""
    return [o for o in overrides if (k := override_key(o)) is None or not k.hydras]


def continue_argv(
    overrides: list[str], run_dir: Path, *, extra: Sequence[str] = ()
) -> list[str]:
    """A start's `overrides`, made to continue its run in `run_dir`, then `extra`.

    Each key is given once, as the check of a command's overrides asks
    (`repeated_keys.py`): a stored override of a key that a later stored one,
    the resume (SET_BY_RESUME) or `extra` sets again is dropped. Hydra took
    the later value, but would keep both in the run's overrides.yaml, one
    more with each resume that sets it; a start made before a repeated key
    was refused may have stored one twice. `extra` is passed on whole: a key
    it repeats is the user's, and refused.
    """
    replayed: list[str] = []
    for override in overrides:  # a key stored twice: its last, as Hydra took it
        replayed = _then(replayed, [override])
    kept = [
        o
        for o in replayed
        if (k := override_key(o)) is None or k.key not in SET_BY_RESUME
    ]
    return _then([*kept, f"{RESUME_KEY}=true", run_dir_override(run_dir)], extra)


def _then(overrides: list[str], later: Sequence[str]) -> list[str]:
    """`overrides` but those of a key `later` sets again, then `later`.

    Where an override dropped added the key (`+key=`: not in the packaged
    config), a later plain `key=` adds it in the same way, as Hydra refuses
    to change a key it does not have, and a later `~key` is left out: the
    add dropped is the delete, and Hydra refuses to delete a key it does not
    have.
    """
    replaced = {k.key for k in map(override_key, later) if k}
    kept = []
    added: dict[str, str] = {}  # a dropped add's key: its prefix
    for override in overrides:
        key = override_key(override)
        if key is None or key.key not in replaced:
            kept.append(override)
        elif key.prefix in ADDS:
            added.setdefault(key.key, key.prefix)
    return kept + [
        _added_again(o, added) for o in later if not _deletes_an_add(o, added)
    ]


def shell_words(argv: Sequence[str]) -> str:
    """`argv` as words a POSIX shell (bash, zsh) splits back into `argv`.

    shlex quotes a word holding `'`, as a Hydra override quoting a folder
    does, as `'hydra.run.dir='"'"'a,b[1]'"'"''`: one with nothing a shell
    reads inside double quotes is double-quoted instead.
    """
    return " ".join(
        f'"{word}"'
        if "'" in word and not LIVE_IN_DOUBLE_QUOTES.search(word)
        else shlex.quote(word)
        for word in argv
    )


def _deletes_an_add(override: str, added: dict[str, str]) -> bool:
    """Whether `override` deletes a key the start added with `+key=` (dropped)."""
    key = override_key(override)
    return key is not None and key.prefix == "~" and added.get(key.key) == "+"


def _added_again(override: str, added: dict[str, str]) -> str:
    """`override`, with the prefix of `added`'s add where it plainly sets its key."""
    key = override_key(override)
    if key is None or key.prefix or key.key not in added:
        return override
    return added[key.key] + override


def run_dir_override(run_dir: Path, *, key: str = RUN_DIR_KEY) -> str:
    """The override that names `run_dir` as the run's folder, quoted where needed.

    `key`: SWEEP_DIR_KEY names a --multirun sweep's folder instead.

    Hydra's override grammar takes `,` `[` `]` `=` `'`, spaces and letters
    outside ASCII only in a quoted value. In single quotes a backslash
    escapes a quote, and so must be doubled only before a quote or at the
    end. (Hydra resolves `${` in the folder even quoted and escaped:
    `check_nameable` refuses such a path.)
    """
    path = str(run_dir)
    if _named_dir([f"{key}={path}"], key) == run_dir:
        return f"{key}={path}"
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", path)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"{key}='{escaped}'"


def check_nameable(run_dir: Path) -> None:
    """Refuse a folder whose path Hydra would read as an interpolation."""
    if "${" in str(run_dir):
        raise FedmodelError(
            f"{run_dir}: Hydra reads '${{' in a folder's path as an "
            "interpolation, so it cannot name this folder; rename it without '${'"
        )


def named_run_dir(overrides: list[str]) -> Path | None:
    """The folder `hydra.run.dir=` names among `overrides` (the last one), if any.

    Read with Hydra's own parser, quotes and escapes and all; None where it
    cannot parse them (Hydra then names the override) or none names it.
    """
    return _named_dir(overrides, RUN_DIR_KEY)


def named_sweep_dir(overrides: list[str]) -> Path | None:
    """The folder `hydra.sweep.dir=` names among `overrides`, as `named_run_dir`."""
    return _named_dir(overrides, SWEEP_DIR_KEY)


def _named_dir(overrides: list[str], key: str) -> Path | None:
    named = None
    for override in overrides:
        parsed = _parsed(override)
        if parsed is None:
            return None
        if parsed.key_or_group == key and not parsed.is_delete():
            named = parsed.value()
    return Path(named) if isinstance(named, str) else None


def _parsed(override: str) -> Override | None:
    """`override` as Hydra's parser reads it; None where it cannot."""
    from hydra.errors import HydraException

    try:
        return override_parser().parse_override(override)
    except HydraException:
        return None
