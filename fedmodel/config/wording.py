"""How fedmodel's messages count things: one record, two records, the first ten.

And how they state a bound: an upper bound rounded up, never below it
(`decimals_up`, `two_digits_up`, `three_digits_up`, `power_of_ten_up`), a
lower bound rounded down, never above it (`decimals_down`).

In `config/`, the lowest package that words messages, so every layer above
can import it.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal


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


def decimals_up(value: float, places: int) -> str:
    """`value` rounded up to `places` decimals: a stated epsilon stays a bound.

    Rounding to the nearest (`f"{value:.4f}"`) states 2.8567 for a ledger's
    2.856718, less than it spent.
    """
    exact = Decimal(repr(value))
    return f"{exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING):f}"


def decimals_down(value: float, places: int) -> str:
    """`value` rounded down to `places` decimals: a stated lower bound stays one.

    An audit's "epsilon >= 2.496" for a bound of 2.49586 claims more leakage
    than it proved.
    """
    exact = Decimal(repr(value))
    return f"{exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR):f}"


def two_digits_up(value: float) -> str:
    """`value` rounded up to two significant digits, trailing zeros dropped.

    The model card's figures: 7.9945 states "8", 0.4512 "0.46", 12.31 "13".
    """
    return f"{_significant_up(value, 2).normalize():f}"


def three_digits_up(value: float) -> str:
    """`value` rounded up to three significant digits, written as `:.3g` would.

    A delta in a table or a line: 1/1200 states 0.000834 (to the nearest,
    0.000833, a smaller chance of failure than the one run), 1/29180 3.43e-05.
    """
    return f"{float(_significant_up(value, 3)):.3g}"


def _significant_up(value: float, digits: int) -> Decimal:
    exact = Decimal(repr(value))
    quantum = Decimal(1).scaleb(exact.adjusted() - digits + 1)
    return exact.quantize(quantum, rounding=ROUND_CEILING)


def power_of_ten_up(value: float) -> str:
    """The smallest power of ten not below `value`: 0.0011 states "0.01".

    For a delta of 1/(10 n) by default, which would give n; its power of ten
    gives only the order of magnitude.
    """
    exact = Decimal(repr(value))
    power = Decimal(1).scaleb(exact.adjusted())
    return f"{power if exact == power else power.scaleb(1):f}"
