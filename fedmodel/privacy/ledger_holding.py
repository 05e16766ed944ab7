"""What a client's privacy ledger holds, and whether it lost what was recorded.

Before a round trains, what a client's ledger holds is compared with what the
server recorded (`federation/ledger_query.py`, `federation/continuity.py`): by
the client, where its train message carries the record, or by the server,
which asks the client; a resumed simulation compares each client's ledger
with the checkpoint before Flower starts (`client/record_check.py`). Each way
the figures come from the file alone: no training record is read, no
accountant is run, nothing is charged. One rule decides (`ledger_regression`):
a ledger only grows, unless its site's operator reset it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import isclose
from pathlib import Path

from fedmodel.config.wording import decimals_up, plural
from fedmodel.privacy.figure_keys import (
    EPSILON_KEY,
    LEDGER_RESETS_KEY,
    ROUND_STEPS_KEY,
    STEPS_KEY,
)
from fedmodel.privacy.ledger_record import (
    LEDGER_FILE,
    NEW_RUN,
    STORED_EPSILON_TOLERANCE,
    LedgerRecord,
    read_record,
)
from fedmodel.privacy.ledger_reset import reset_count


def held_figures(state_dir: Path) -> dict[str, float]:
    """The steps and epsilon the ledger in `state_dir` holds, and its reset count.

    Where there is no ledger file it holds 0 steps and epsilon 0; a file that
    cannot be read is a FedmodelError naming it.
    """
    path = state_dir / LEDGER_FILE
    return record_figures(read_record(path) if path.is_file() else None, state_dir)


def record_figures(record: LedgerRecord | None, state_dir: Path) -> dict[str, float]:
    """The figures of `held_figures` from `record`, the ledger read in `state_dir`.

    None stands for no ledger file. The epsilon is the one its last charge
    stored: a round checks it against the history before it charges
    (`ledger_check.checked_epsilon`), which takes an accountant call.
    """
    steps, epsilon = 0, 0.0
    if record is not None:
        steps = record.steps
        epsilon = record.spent_epsilon
    return {
        STEPS_KEY: float(steps),
        EPSILON_KEY: epsilon,
        LEDGER_RESETS_KEY: float(reset_count(state_dir)),
    }


def ledger_regression(
    previous: Mapping[str, float] | None,
    figures: Mapping[str, float],
    *,
    in_a_run: bool = False,
) -> str | None:
    """Why `figures` cannot follow `previous` for one client, or None if they can.

    A client whose figures show fewer steps before this round's charge, or
    less epsilon, than were recorded for it has lost charges: its ledger was
    deleted, replaced or edited. Only a raised reset count (`fedmodel ledger
    reset` archives the old ledger) starts a site's budget again. `in_a_run`:
    the ledger is a run's, a simulated client's or the server's client-level
    one (`ledger_shortfall` asks for both), whose folder `fedmodel ledger
    reset` refuses: a ledger archived there by hand starts no new budget, and
    the way out the returned words give is a new run.
    """
    if previous is None or EPSILON_KEY not in previous or EPSILON_KEY not in figures:
        return None
    reset = figures.get(LEDGER_RESETS_KEY, 0) > previous.get(LEDGER_RESETS_KEY, 0)
    if reset and not in_a_run:
        return None
    epsilon, earlier = figures[EPSILON_KEY], previous[EPSILON_KEY]
    steps, earlier_steps = figures.get(STEPS_KEY, 0), previous.get(STEPS_KEY, 0)
    held_before = steps - figures.get(ROUND_STEPS_KEY, 0)
    lost = []
    if held_before < earlier_steps:
        lost.append(
            f"held {held_before:.0f} {plural(round(held_before), 'step')} before "
            "this round, fewer than the "
            f"{earlier_steps:.0f} the server recorded for it"
        )
    # A spent client reports its history's epsilon recomputed, the ledger holds
    # the stored one: the same figure, within what opening a ledger accepts.
    if epsilon < earlier and not isclose(
        epsilon, earlier, rel_tol=STORED_EPSILON_TOLERANCE
    ):
        lost.append(
            f"reports epsilon {decimals_up(epsilon, 4)}, below the "
            f"{decimals_up(earlier, 4)} the server "
            "recorded for it"
        )
    if not lost:
        return None
    way_out = (
        f"Restore the client's ledger, or {NEW_RUN}"
        if in_a_run
        else "Restore the site's ledger; if its operator started a new budget on "
        "purpose, run `fedmodel ledger reset --state-dir DIR --yes` at the site "
        "first"
    )
    return (
        f"its privacy ledger {' and '.join(lost)}: the "
        "ledger was deleted, replaced or edited, and taking it would under-count "
        f"what the client released. {way_out}"
    )


def ledger_shortfall(
    recorded: Mapping[str, float],
    record: LedgerRecord | None,
    state_dir: Path,
    *,
    count: Callable[[int], str],
) -> str | None:
    """What a ledger holds, in words, when it lost what `recorded` holds.

    None when `record` (the ledger read in `state_dir`; None for no file)
    holds enough by `ledger_regression`. Else "does not exist", or "holds
    <count(steps)> (epsilon E)", for a resume's refusal to name
    (`client/record_check.py`, `privacy/client_level.py`). Both are a run's
    ledgers, which no reset starts again: a file in `state_dir` named as an
    archived ledger does not excuse one that went back.
    """
    held = record_figures(record, state_dir)
    if ledger_regression(recorded, held, in_a_run=True) is None:
        return None
    if record is None:
        return "does not exist"
    epsilon = decimals_up(held[EPSILON_KEY], 4)
    return f"holds {count(record.steps)} (epsilon {epsilon})"
