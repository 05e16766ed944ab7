"""A config error of Hydra, OmegaConf or fedmodel as the one line a command prints.

Hydra's own messages run over several lines and name its grammar; the line
here names the override or key, with a "did you mean" where a close match is
cheap to find, and how to write what Hydra refused where that is known.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from fedmodel.config.compose import is_option
from fedmodel.errors import FedmodelError

# How Hydra's refusal of a `~key` override starts.
DELETE = "Could not delete from config."
# How Hydra's lexer refuses a character its grammar takes only quoted.
_LEXER_REFUSAL = "LexerNoViableAltException"
# A character Hydra's grammar takes in an unquoted value: its lexer's letters
# (ASCII only), digits, UNQUOTED_CHAR, spaces, and the list, dict and call
# punctuation. Any other (`ü` of `Zürich.csv`, `&` of `A&E/test.csv`, `#`)
# stops it with a bare LexerNoViableAltException.
_UNQUOTED = re.compile(r"[A-Za-z0-9_\-/\\+.$%*@?|:=\[\]{}(),\s]")


def error_line(exc: FedmodelError) -> str:
    """A FedmodelError's message, or one line for the Hydra error behind it."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    cause = exc.__cause__
    if isinstance(cause, HydraException | OmegaConfBaseException):
        return hydra_error_line(cause)
    return str(exc)


def hydra_error_line(exc: BaseException) -> str:
    """One line for a Hydra/OmegaConf config error, with a guess where cheap."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(exc, OverrideParseException):
        reason = _parse_reason(exc.message)
        hint = _quote_hint(str(exc.override))
        if hint and reason.startswith(_LEXER_REFUSAL):
            # Its text is the override again, after the lexer's class name.
            return f"cannot parse the override '{exc.override}': {hint}"
        line = f"cannot parse the override '{exc.override}': {reason}"
        return line + (f"; {hint}" if hint else "")
    if isinstance(exc, MissingConfigException) and exc.options:
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        options = sorted(name for name in exc.options if is_option(name))
        return (
            f"no option '{option}' in config group '{group}'"
            f"{_did_you_mean(option, options)}; options: {', '.join(options)}"
        )
    text = str(exc)
    if several := _quoted(text, "Ambiguous value for argument"):
        listed, _, values = several.partition("=")
        if _is_list_key(listed):  # not a sweep: a list written without brackets
            return (
                f"'{several}' gives several values, and {listed} is a list: write "
                f"it in brackets, '{listed}=[{values}]'"
            )
        return (
            f"'{several}' gives several values, and a run takes one (a sweep: "
            f"fedmodel simulate --multirun {several}; privacy-plan plans one "
            "value at a time; a list is written key=[a,b])"
        )
    if deleted := _quoted(text, DELETE) or _quoted(text, f"{DELETE} The value of"):
        # fedmodel refuses deleting a key the config holds before Hydra runs
        # (`check_overrides`): what Hydra refuses is a key it does not hold.
        return _unknown_key_line(deleted, list(_config_keys()))
    cause = exc.__cause__
    key = getattr(cause, "full_key", None) or _quoted(text, "Could not override")
    if key and ("not in struct" in str(cause) or "Could not override" in text):
        return _unknown_key_line(key, list(_config_keys()))
    first = next((line for line in text.splitlines() if line.strip()), text)
    return first.strip()


def _unknown_key_line(key: str, keys: list[str]) -> str:
    return (
        f"unknown config key '{key}'{_did_you_mean_key(key, keys)}; "
        "`fedmodel simulate --cfg job` prints every key"
    )


def _did_you_mean_key(given: str, keys: list[str]) -> str:
    """The keys of the same last name, else the closest spelling.

    A known name under the wrong group (`federation.num_rounds`) is spelt
    closer to a key of that group (`federation.name`) than to its own; and
    where several groups hold the name (`batch_size`), the closest of them
    may not be the one meant, so all are named.
    """
    leaf = given.removeprefix("+").rpartition(".")[2]
    same = [key for key in keys if key.rpartition(".")[2] == leaf]
    if len(same) > 1:
        return f" (did you mean one of {', '.join(repr(key) for key in same)}?)"
    return _did_you_mean(given, same or keys)


def _parse_reason(message: str | None) -> str:
    """The first line of Hydra's refusal that says why, not that it refused."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error parsing override"):
        # The line below names the value: "Unknown function 'Neoplasms'".
        return lines[1]
    return lines[0] if lines else "bad syntax"


def _quote_hint(override: str) -> str:
    """How to write a value Hydra's grammar takes only quoted, where known.

    A `~` path, a label with parentheses (`Neoplasms (C00-D49)`), which
    unquoted Hydra reads as a call of one of its grammar's functions, and a
    value holding any character its lexer takes only quoted (`Zürich.csv`),
    an apostrophe too (`St Mary's/test.csv`), escaped with a backslash there.
    """
    key, _, value = override.partition("=")
    items = [
        item.strip() for item in value.removeprefix("[").removesuffix("]").split(",")
    ]
    if any(
        item[:1] == "'" or item[-1:] == "'" or _hydra_quoted(item) for item in items
    ):
        return ""  # quoted already
    other = next((c for c in value if not _UNQUOTED.fullmatch(c)), None)
    if "~" in value:
        why = "Hydra takes a ~ only inside quotes"
    elif "(" in value or ")" in value:
        why = "Hydra takes ( and ) only inside quotes"
    elif other is not None:
        why = f"Hydra takes {other!r} only inside quotes"
    else:
        return ""
    escaped = [item.replace("'", "\\'") for item in items]
    quoted = ",".join(f"'{item}'" for item in escaped)
    fixed = f"{key}=[{quoted}]" if value.startswith("[") else f"{key}={quoted}"
    return f'{why}: write "{_shell_escaped(fixed)}"'


def _hydra_quoted(item: str) -> bool:
    """Whether a value is one of Hydra's double-quoted strings (`"a b"`)."""
    return len(item) > 1 and item[0] == item[-1] == '"'


def _shell_escaped(text: str) -> str:
    """`text` as it reads between a shell's double quotes.

    There `"`, `$` and a backtick end the quotes or expand, and a backslash
    before one of them or before a backslash is dropped: each is escaped with
    a backslash (a value's `"`, as in `/data/"x"/t.csv`, left the line at
    Hydra's bare LexerNoViableAltException).
    """
    return re.sub(r'["$`]|\\(?=[\\"$`])', lambda found: "\\" + found[0], text)


def _quoted(text: str, after: str) -> str | None:
    found = re.search(re.escape(after) + r" '([^']+)'", text)
    return found.group(1) if found else None


def _is_list_key(key: str) -> bool:
    """Whether the settings type `key` (`task.labels`) as a list."""
    import dataclasses
    import typing

    from fedmodel.config import RunSettings

    hint: Any = RunSettings
    for part in key.removeprefix("+").split("."):
        if not dataclasses.is_dataclass(hint):
            return False
        hint = typing.get_type_hints(hint).get(part)
    # A list, or a union holding one (`list[str] | None`).
    return any(
        typing.get_origin(kind) is list for kind in (hint, *typing.get_args(hint))
    )


def _did_you_mean(given: str, known: list[str]) -> str:
    close = difflib.get_close_matches(given, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _config_keys() -> Iterator[str]:
    """Every dotted key of the default config."""
    from fedmodel.config import compose_config

    def walk(node: dict[str, Any], prefix: str) -> Iterator[str]:
        for name, value in node.items():
            yield prefix + name
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{name}.")

    return walk(compose_config([]), "")
