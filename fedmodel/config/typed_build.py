"""Typed settings built from a nested mapping, each value checked against its type.

`build_typed` walks a dataclass's fields: a missing or unknown key, and a
value of the wrong type, is one `FedmodelError` naming the key and what to
set; a number's range is stated from `number_rules.py`. The checks that tie
keys together come after, in `checks.py`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from fedmodel.config.number_rules import NUMBER_RULES, OVERFLOW_NOTE
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError

T = TypeVar("T")


def build_typed(cls: type[T], raw: Mapping[str, Any], *, path: str) -> T:
    """`cls` built from `raw`, under the dotted key `path` ("" at the top)."""
    if not isinstance(raw, Mapping):
        raise FedmodelError(f"config key '{path}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f" under '{path}'" if path else ""
        named = f"{plural(len(unknown), 'key')} {unknown}{where}"
        raise FedmodelError(f"unknown config {named}; known keys: {sorted(fields)}")
    values: dict[str, Any] = {}
    for name in fields:
        key = f"{path}.{name}" if path else name
        if name not in raw:
            # Every default lives in the packaged YAML, which carries every key.
            raise FedmodelError(
                f"config key '{key}' is missing; compose the config from "
                "fedmodel/conf (`fedmodel simulate --cfg job` prints it)"
            )
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
        return build_typed(hint, value, path=key)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list | tuple):
            example = value if isinstance(value, str | int | float) else "..."
            raise FedmodelError(
                f"config key '{key}' must be a list, got {value!r}: write it in "
                f"brackets, e.g. {key}='[{example}]'"
            )
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise FedmodelError(
                f"config key '{key}' must be a mapping, got {value!r}: set its "
                f"entries as {key}.NAME=VALUE"
            )
        return {str(k): str(v) for k, v in value.items()}
    return _coerce_scalar(hint, value, key=key)


def _coerce_scalar(hint: Any, value: Any, *, key: str) -> Any:
    """A bool, int, float or str value checked against its type, else as it is."""
    if hint is bool:
        if not isinstance(value, bool):
            raise FedmodelError(
                f"config key '{key}' must be true or false: {value!r}; set "
                f"{key}=true or {key}=false"
            )
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            read_as = OVERFLOW_NOTE if value in (math.inf, -math.inf) else ""
            raise FedmodelError(
                f"config key '{key}' must be an integer: {value!r}{read_as}; "
                f"{_expected(key, 'whole number')}"
            )
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FedmodelError(
                f"config key '{key}' must be a number: {value!r}; "
                f"{_expected(key, 'number')}"
            )
        return float(value)
    if hint is str:
        if value is None or isinstance(value, Mapping | list):
            raise FedmodelError(
                f"config key '{key}' must be a string: {value!r}; set {key}= one "
                "word or quoted text, not null, a list or a mapping"
            )
        return str(value)
    return value


def _expected(key: str, kind: str) -> str:
    """What to set `key` to: a `kind`, in the key's range where one is stated."""
    listed = re.sub(r"\[\d+\]$", "", key)  # an item: its list is what is set
    bound = NUMBER_RULES.get(listed)
    within = f" {bound.describe()}" if bound is not None else ""
    if listed != key:
        return f"set {listed}='[...]' with each item a {kind}{within}"
    return f"set {key}= a {kind}{within}"
