"""How fedmodel's messages count things: one record, two records, the first ten.

In `config/`, the lowest package that words messages, so every layer above
can import it.
"""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    """`one` when `count` is 1, else `many` (by default `one` with an "s").

    Words a noun, `f"{n} {plural(n, 'record')}"`, or a verb that agrees with
    one, `plural(n, "has", "have")`.
    """
    if count == 1:
        return one
    return one + "s" if many is None else many


def first_ten(items: list[str]) -> list[str]:
    """`items` as a message lists them: the first ten, then "..." for the rest."""
    return items[:10] + (["..."] if len(items) > 10 else [])
