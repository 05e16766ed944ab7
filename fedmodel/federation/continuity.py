"""The server's check that a client's ledger never goes back.

A ledger only grows: every round a client trains in adds steps and epsilon. The
server remembers the figures each client last reported (its checkpoint keeps
them across a resume), so a client whose report shows fewer steps before this
round's charge, or less epsilon, than the server already saw has lost charges:
its state folder was deleted, or its ledger replaced or edited. Taking it at
its word would under-count what it released, so it is refused: before it
trains, where the server asks what its ledger holds (`ledger_query.py`), and
its update too, should one show it after all. Only a
reset by the site's operator (`fedmodel ledger reset`, which archives the old
ledger and so raises the count the client reports) starts a budget again.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedmodel.privacy.figure_keys import (
    EPSILON_KEY,
    LEDGER_RESETS_KEY,
    ROUND_STEPS_KEY,
    STEPS_KEY,
)

# Room for floating-point noise between two computations of one epsilon.
EPSILON_TOLERANCE = 1e-9


def ledger_regression(
    previous: Mapping[str, float] | None, figures: Mapping[str, float]
) -> str | None:
    """Why `figures` cannot follow `previous` for one client, or None if they can."""
    if previous is None or EPSILON_KEY not in previous or EPSILON_KEY not in figures:
        return None
    if figures.get(LEDGER_RESETS_KEY, 0) > previous.get(LEDGER_RESETS_KEY, 0):
        return None
    epsilon, earlier = figures[EPSILON_KEY], previous[EPSILON_KEY]
    steps, earlier_steps = figures.get(STEPS_KEY, 0), previous.get(STEPS_KEY, 0)
    held_before = steps - figures.get(ROUND_STEPS_KEY, 0)
    lost = []
    if held_before < earlier_steps:
        lost.append(
            f"held {held_before:.0f} step{'' if held_before == 1 else 's'} before "
            "this round, fewer than the "
            f"{earlier_steps:.0f} the server recorded for it"
        )
    if epsilon + EPSILON_TOLERANCE < earlier:
        lost.append(
            f"reports epsilon {epsilon:.4f}, below the {earlier:.4f} the server "
            "recorded for it"
        )
    if not lost:
        return None
    return (
        f"its privacy ledger {' and '.join(lost)}: the "
        "ledger was deleted, replaced or edited, and taking it would under-count "
        "what the client released. Restore the site's ledger; if its operator "
        "started a new budget on purpose, run `fedmodel ledger reset --state-dir "
        "DIR --yes` at the site first"
    )
