"""config/wording: counting words, and bounds stated on their safe side."""

from __future__ import annotations

import pytest

from fedmodel.config.wording import (
    decimals_down,
    decimals_up,
    power_of_ten_up,
    three_digits_up,
    two_digits_up,
)


@pytest.mark.parametrize(
    ("value", "places", "stated"),
    [
        (2.856718, 4, "2.8568"),
        (7.9955, 3, "7.996"),
        (2.0, 4, "2.0000"),
        (0.0, 2, "0.00"),
    ],
)
def test_decimals_up_never_states_less(value: float, places: int, stated: str) -> None:
    assert decimals_up(value, places) == stated


@pytest.mark.parametrize(
    ("value", "places", "stated"),
    [
        (2.4958621980135605, 3, "2.495"),  # to the nearest, 2.496: above it
        (1.7878381066767952, 3, "1.787"),
        (2.0, 3, "2.000"),
        (0.0, 3, "0.000"),
    ],
)
def test_decimals_down_never_states_more(
    value: float, places: int, stated: str
) -> None:
    # An audit's lower bound on epsilon: a claim of leakage it did not prove.
    assert decimals_down(value, places) == stated


@pytest.mark.parametrize(
    ("value", "stated"),
    [
        (7.994546763855584, "8"),
        (0.99941, "1"),
        (8.0, "8"),
        (0.4512, "0.46"),
        (12.31, "13"),
        (100.0, "100"),
        (123.456, "130"),
        (3.1e-05, "0.000031"),
        (1 / 680, "0.0015"),
    ],
)
def test_two_digits_up_keeps_two_significant_digits(value: float, stated: str) -> None:
    # The model card's figures, as the card gave them before the move here.
    assert two_digits_up(value) == stated
    assert float(stated) >= value


@pytest.mark.parametrize(
    ("value", "stated"),
    [
        (1 / 1200, "0.000834"),  # to the nearest, 0.000833: below the delta run
        (1 / 1500, "0.000667"),
        (1 / 29180, "3.43e-05"),
        (1e-05, "1e-05"),
        (0.001, "0.001"),
        (0.0010004, "0.00101"),
    ],
)
def test_three_digits_up_states_a_delta_never_below_it(
    value: float, stated: str
) -> None:
    # A delta in privacy-plan's table, `ledger show` and the audit's line.
    assert three_digits_up(value) == stated
    assert float(stated) >= value


@pytest.mark.parametrize(
    ("value", "stated"),
    [
        (5.020080321285141e-05, "0.0001"),
        (1e-05, "0.00001"),
        (0.001, "0.001"),
        (0.0011, "0.01"),
        (1 / 680, "0.01"),
        (12.31, "100"),
    ],
)
def test_power_of_ten_up_is_the_smallest_not_below(value: float, stated: str) -> None:
    assert power_of_ten_up(value) == stated
