"""A ledger edited by hand is refused: its history must still spend what was recorded.

Each charge stores the epsilon its history spent. A noise multiplier raised,
a sample rate lowered or a stored epsilon lowered by hand would make the
ledger under-count; on opening, the history is evaluated again and the
ledger is refused unless its last charge recorded that same epsilon.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_reset import ledger_status

PLAN = PrivacyPlan(
    target_epsilon=8.0,
    delta=1e-4,
    sample_rate=0.1,
    steps_per_round=10,
    planned_rounds=4,
    noise_multiplier=1.0,
    accountant="rdp",
)
ROUNDS = 4
Edit = Callable[[dict[str, Any]], None]


def open_ledger(path: Path, plan: PrivacyPlan = PLAN) -> PrivacyLedger:
    return PrivacyLedger.open(
        path, client_id="site-a", plan=plan, data_fingerprint="sha256:abc"
    )


def charged(path: Path, plan: PrivacyPlan = PLAN) -> PrivacyLedger:
    ledger = open_ledger(path, plan)
    for number in range(1, ROUNDS + 1):
        ledger.charge(round_number=number, steps=plan.steps_per_round)
    return ledger


def edit(path: Path, change: Edit) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "privacy_ledger.json"


@pytest.mark.parametrize(
    "plan", [PLAN, replace(PLAN, accountant="prv", noise_multiplier=1.5)]
)
def test_an_untouched_ledger_of_several_rounds_opens(
    path: Path, plan: PrivacyPlan
) -> None:
    spent = charged(path, plan).epsilon
    reopened = open_ledger(path, plan)
    assert reopened.epsilon == spent == reopened.rounds[-1].epsilon
    assert len(reopened.history) == ROUNDS
    assert ledger_status(path.parent).epsilon == spent


def test_a_stored_epsilon_off_in_its_last_digits_still_opens(path: Path) -> None:
    # What another build of the accountant's numerics may give: not an edit.
    spent = charged(path).epsilon
    edit(path, lambda raw: raw["rounds"][-1].update(epsilon=spent * (1 + 1e-9)))
    assert open_ledger(path).epsilon == spent


def _raise_noise(raw: dict[str, Any]) -> None:
    raw["history"][1][0] = 1.5


def _raise_all_noise(raw: dict[str, Any]) -> None:
    # An edit made with care: every entry and the ledger's own figure.
    for entry in raw["history"]:
        entry[0] = 2.0
    raw["noise_multiplier"] = 2.0


def _lower_sample_rate(raw: dict[str, Any]) -> None:
    raw["history"][-1][1] = 0.05


def _lower_stored_epsilon(raw: dict[str, Any]) -> None:
    raw["rounds"][-1]["epsilon"] *= 0.5


def _raise_stored_epsilon(raw: dict[str, Any]) -> None:
    # Over-counts on its face, but it is also what a history edited to spend
    # less leaves behind: the two cannot be told apart, so it is refused too.
    raw["rounds"][-1]["epsilon"] *= 1.01


@pytest.mark.parametrize(
    "change",
    [
        _raise_noise,
        _raise_all_noise,
        _lower_sample_rate,
        _lower_stored_epsilon,
        _raise_stored_epsilon,
    ],
)
def test_an_edited_ledger_is_refused_naming_the_file_and_round(
    path: Path, change: Edit
) -> None:
    charged(path)
    edit(path, change)
    edited = path.read_text()
    for read in (lambda: open_ledger(path), lambda: ledger_status(path.parent)):
        with pytest.raises(FedmodelError, match="was edited since") as info:
            read()
        message = str(info.value)
        assert str(path) in message and f"round {ROUNDS} (entry {ROUNDS})" in message
        assert "will not start over" in message and "restore a copy" in message
    assert path.read_text() == edited


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (0, 0.0, "noise multiplier 0.0 is out of range: it must be above 0"),
        (0, -1.0, "noise multiplier -1.0 is out of range"),
        (1, 0.0, "sample rate 0.0 is out of range"),
        (1, 1.5, "sample rate 1.5 is above 1"),
        (2, 0, "steps must be an integer >= 1, got 0"),
    ],
)
def test_an_impossible_entry_is_refused_naming_it(
    path: Path, field: int, value: float, problem: str
) -> None:
    charged(path)

    def impossible(raw: dict[str, Any]) -> None:
        raw["history"][1][field] = value
        raw["rounds"][1]["steps"] = raw["history"][1][2]

    edit(path, impossible)
    with pytest.raises(FedmodelError, match="will not start over") as info:
        open_ledger(path)
    assert str(path) in str(info.value)
    assert f"history entry 2's {problem}" in str(info.value)


def test_a_history_edited_to_spend_more_is_refused_all_the_same(path: Path) -> None:
    # Safe on its face, but the file no longer says what was charged.
    charged(path)
    edit(path, lambda raw: raw["history"][0].__setitem__(0, 0.5))
    with pytest.raises(FedmodelError, match="was edited since"):
        open_ledger(path)


def write_literal(path: Path, where: tuple[str | int, ...], literal: str) -> None:
    """Put `literal`, JSON text as a hand edit may leave it, at `where`."""
    raw = json.loads(path.read_text())
    *parents, last = where
    target = raw
    for key in parents:
        target = target[key]
    target[last] = "@literal@"
    path.write_text(json.dumps(raw).replace('"@literal@"', literal))


HUGE = "1" + "0" * 400  # a JSON integer no float holds
SHOWN_HUGE = "100000000000000000...0000000000000000000"


@pytest.mark.parametrize(
    ("where", "literal", "problem"),
    [
        (("noise_multiplier",), HUGE, f"noise_multiplier {SHOWN_HUGE} is out of"),
        (("history", 1, 0), "-" + HUGE, "2's noise multiplier -1000000000"),
        (("delta",), "NaN", "delta nan is out of range: it must be above 0 and"),
        (("target_epsilon",), "Infinity", "target_epsilon inf is out of range"),
        (("rounds", 3, "epsilon"), "-Infinity", "round epsilon -inf is out of"),
        (("sample_rate",), "true", "sample_rate must be a number, got True"),
        (("rounds", 0, "steps"), "true", "round steps must be an integer >= 1"),
        (("version",), "true", "'version' is True; this fedmodel reads version 1"),
        (("budget_exhausted",), HUGE, f"must be true or false: {SHOWN_HUGE}"),
        (("history", 0), "[" * 500 + "]" * 500, "entry 1 [[[[[[[...]]]]]]] is not"),
        (("rounds", 0), str(list(range(9999))), "round entry [0, 1, 2, 3, 4, 5, ...]"),
        (("sample_rate",), "9" * 5000, "it cannot be read (Exceeds the limit"),
        (("client_id",), "[" * 99999 + "]" * 99999, "it cannot be read (maximum"),
    ],
)
def test_a_value_python_cannot_hold_is_refused_naming_it(
    path: Path, where: tuple[str | int, ...], literal: str, problem: str
) -> None:
    # Python's json reads NaN, Infinity and integers of any size that a float
    # cannot hold; none may escape as a bare OverflowError or RecursionError.
    charged(path)
    write_literal(path, where, literal)
    edited = path.read_text()
    for read in (lambda: open_ledger(path), lambda: ledger_status(path.parent)):
        with pytest.raises(FedmodelError, match="will not start over") as info:
            read()
        message = str(info.value)
        assert str(path) in message and problem in message
        assert len(message) < 1000  # the value is shown cut short, not in full
    assert path.read_text() == edited
