"""The on-disk form of a privacy ledger: one JSON object, checked field by field.

A ledger that cannot be read is an error, never an empty ledger: it holds the
privacy a client has already spent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from reprlib import repr as shown
from typing import TYPE_CHECKING, Any

from fedmodel.config.modes import ACCOUNTANT_NAMES
from fedmodel.errors import FedmodelError

if TYPE_CHECKING:  # reading a ledger file needs no accountant (nor Opacus)
    from fedmodel.privacy.accountants import HistoryEntry

# A client's (or site's) ledger in its state directory.
LEDGER_FILE = "privacy_ledger.json"
# The server's client-level ledger (privacy=central), in a simulation's run folder.
CENTRAL_LEDGER_FILE = "central_privacy_ledger.json"
LEDGER_FORMAT = "fedmodel-privacy-ledger"
LEDGER_VERSION = 1
# A stored epsilon is the float the same computation returned, so only an
# accountant built another way (another BLAS or FFT) may differ, in far
# smaller digits; an edit anyone could make by hand moves it far more. The
# stored and the recomputed epsilon of one history are one figure within it.
STORED_EPSILON_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RoundCharge:
    """One charged round: its number, its steps and the epsilon after it."""

    round: int
    steps: int
    epsilon: float


@dataclass(frozen=True)
class LedgerRecord:
    """Everything a ledger file holds; `history` is what epsilon is computed from."""

    client_id: str
    accountant: str
    delta: float
    target_epsilon: float
    noise_multiplier: float
    sample_rate: float
    data_fingerprint: str
    history: tuple[HistoryEntry, ...] = ()
    rounds: tuple[RoundCharge, ...] = ()
    budget_exhausted: bool = False

    @property
    def steps(self) -> int:
        """Noisy optimizer steps charged so far."""
        return sum(entry[2] for entry in self.history)

    @property
    def spent_epsilon(self) -> float:
        """The epsilon its last charge stored: what it has spent (0 before one)."""
        return self.rounds[-1].epsilon if self.rounds else 0.0

    def to_json(self) -> str:
        """Serialise to the ledger file's JSON text."""
        body = {
            "format": LEDGER_FORMAT,
            "version": LEDGER_VERSION,
            "client_id": self.client_id,
            "accountant": self.accountant,
            "delta": self.delta,
            "target_epsilon": self.target_epsilon,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "data_fingerprint": self.data_fingerprint,
            "budget_exhausted": self.budget_exhausted,
            "history": [list(entry) for entry in self.history],
            "rounds": [
                {"round": r.round, "steps": r.steps, "epsilon": r.epsilon}
                for r in self.rounds
            ],
        }
        return json.dumps(body, indent=2, allow_nan=False) + "\n"


def read_record(path: Path) -> LedgerRecord:
    """Load and check a ledger file; any problem is a `FedmodelError` naming it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    # ValueError: not JSON, or an integer past Python's 4300-digit limit.
    except (OSError, ValueError, RecursionError) as exc:
        raise unusable_ledger(path, f"it cannot be read ({exc})") from exc
    try:
        return _parse(raw)
    except KeyError as exc:
        raise unusable_ledger(path, f"field {exc} is missing") from exc
    except (TypeError, ValueError) as exc:
        raise unusable_ledger(path, str(exc)) from exc


# The way out of a simulated client's ledger in a run folder, which `fedmodel
# ledger reset` refuses: new budgets are a new run's.
NEW_RUN = "start a new run in a folder of its own for new budgets"


class LedgerRefusal(FedmodelError):
    """A ledger refused, worded for a site: `fedmodel ledger reset` is its way out.

    A simulated client's ledger in a run folder is one `fedmodel ledger reset`
    refuses; whoever knows the ledger is one asks `in_a_run` for its words.
    """

    def __init__(self, message: str, *, in_a_run: str) -> None:
        super().__init__(message)
        self._in_a_run = in_a_run

    def in_a_run(self) -> FedmodelError:
        """The refusal for a simulated client's ledger in a run folder."""
        return FedmodelError(self._in_a_run)


def unusable_ledger(path: Path, what: str) -> FedmodelError:
    """The error for a ledger file that cannot be trusted: `what` is wrong with it.

    The server's client-level ledger (`CENTRAL_LEDGER_FILE`) is never reset, so
    its advice is a new run; a client's names `fedmodel ledger reset` for a site
    (`LedgerRefusal`).
    """
    if path.name == CENTRAL_LEDGER_FILE:
        return FedmodelError(
            f"privacy ledger {path} is unusable: {what}. It is the server's "
            "client-level ledger of a privacy=central run and records the privacy "
            "every client has already spent in it, so fedmodel will not start "
            "over: restore a copy holding every charge made since, or start a new "
            "run in a folder of its own (a new budget; this ledger is never reset)"
        )
    spent = (
        f"privacy ledger {path} is unusable: {what}. It records the privacy this "
        "client has already spent, so fedmodel will not start over: restore a "
        "copy holding every charge made since"
    )
    return LedgerRefusal(
        f"{spent}; a site may archive it (`fedmodel ledger reset --state-dir "
        f"{path.parent} --yes`) for a new budget, sound on new records only; a "
        "simulation may start a new run",
        in_a_run=f"{spent}, or {NEW_RUN}",
    )


def _parse(raw: Any) -> LedgerRecord:
    if not isinstance(raw, dict):
        raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
    if (found := raw.get("format")) != LEDGER_FORMAT:
        raise ValueError(f"'format' is {shown(found)}, not {LEDGER_FORMAT!r}")
    if raw.get("version") != LEDGER_VERSION or isinstance(raw.get("version"), bool):
        raise ValueError(
            f"'version' is {shown(raw.get('version'))}; this fedmodel reads version "
            f"{LEDGER_VERSION}"
        )
    accountant = _string(raw, "accountant")
    if accountant not in ACCOUNTANT_NAMES:
        raise ValueError(
            f"'accountant' is {shown(accountant)}, not one of {ACCOUNTANT_NAMES}"
        )
    history = tuple(
        _history_entry(item, number)
        for number, item in enumerate(_list(raw, "history"), start=1)
    )
    rounds = tuple(_round_charge(item) for item in _list(raw, "rounds"))
    if [entry[2] for entry in history] != [charge.steps for charge in rounds]:
        raise ValueError("'history' and 'rounds' disagree on the steps charged")
    exhausted = raw["budget_exhausted"]
    if not isinstance(exhausted, bool):
        raise TypeError(f"'budget_exhausted' must be true or false: {shown(exhausted)}")
    return LedgerRecord(
        client_id=_string(raw, "client_id"),
        accountant=accountant,
        delta=_number(raw["delta"], "delta", low=0.0, high=1.0),
        target_epsilon=_number(raw["target_epsilon"], "target_epsilon", low=0.0),
        noise_multiplier=_noise(raw["noise_multiplier"], "noise_multiplier"),
        sample_rate=_rate(raw["sample_rate"], "sample_rate"),
        data_fingerprint=_string(raw, "data_fingerprint"),
        history=history,
        rounds=rounds,
        budget_exhausted=exhausted,
    )


def _history_entry(item: Any, number: int) -> HistoryEntry:
    # A charged round always had noise: zero noise spends an infinite epsilon,
    # which the cap never lets through.
    name = f"history entry {number}"
    if not isinstance(item, list) or len(item) != 3:
        raise ValueError(f"{name} {shown(item)} is not [noise, rate, steps]")
    sigma, rate, steps = item
    return (
        _number(sigma, f"{name}'s noise multiplier", low=0.0),
        _rate(rate, f"{name}'s sample rate"),
        _count(steps, f"{name}'s steps", low=1),
    )


def _round_charge(item: Any) -> RoundCharge:
    if not isinstance(item, dict):
        raise ValueError(f"round entry {shown(item)} is not an object")
    return RoundCharge(
        round=_count(item["round"], "round number", low=0),
        steps=_count(item["steps"], "round steps", low=1),
        epsilon=_number(item["epsilon"], "round epsilon", low=0.0, inclusive=True),
    )


def _string(raw: dict[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, got {shown(value)}")
    return value


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw[key]
    if not isinstance(value, list):
        raise TypeError(f"{key!r} must be a list, got {shown(value)}")
    return value


def _number(
    value: Any,
    name: str,
    *,
    low: float,
    high: float = math.inf,
    inclusive: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float (10**400): out of range
        number = math.inf
    above_low = number >= low if inclusive else number > low
    if not (above_low and number < high):
        least = f"{'at least' if inclusive else 'above'} {low:g}"
        most = "finite" if high == math.inf else f"below {high:g}"
        raise ValueError(
            f"{name} {shown(value)} is out of range: it must be {least} and {most}"
        )
    return number


def _noise(value: Any, name: str) -> float:
    return _number(value, name, low=0.0, inclusive=True)


def _rate(value: Any, name: str) -> float:
    number = _number(value, name, low=0.0)
    if number > 1.0:
        raise ValueError(f"{name} {shown(value)} is above 1")
    return number


def _count(value: Any, name: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {shown(value)}")
    return value
