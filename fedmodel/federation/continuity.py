"""The check that a client's ledger never goes back, at the server and the client.

A ledger only grows: every round a client trains in adds steps and epsilon. The
server remembers the figures each client last reported (its checkpoint keeps
them across a resume), so a client whose report shows fewer steps before this
round's charge, or less epsilon, than the server already saw has lost charges:
its state folder was deleted, or its ledger replaced or edited. Taking it at
its word would under-count what it released, so it is refused before it
trains (`ledger_query.py`): by the client itself, where the train message
carries what the server recorded (`check_recorded_ledger`), or by the server,
which asks the others what their ledger holds; and its update too, should one
show it after all. Only a reset by the site's operator (`fedmodel ledger
reset`, which archives the old ledger and so raises the count the client
reports) starts a budget again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedmodel.errors import FedmodelError
from fedmodel.federation.messages import CLIENT_ID_KEY
from fedmodel.privacy.figure_keys import (
    EPSILON_KEY,
    LEDGER_RESETS_KEY,
    ROUND_STEPS_KEY,
    STEPS_KEY,
)
from fedmodel.privacy.ledger_holding import held_figures

# Room for floating-point noise between two computations of one epsilon.
EPSILON_TOLERANCE = 1e-9
# The figures `ledger_regression` compares, as a train message carries them.
RECORDED_FIGURES = (STEPS_KEY, EPSILON_KEY, LEDGER_RESETS_KEY)


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


def recorded_for(client_id: int, figures: Mapping[str, float]) -> dict[str, float]:
    """What a train message carries to the node that reported `figures` as `client_id`.

    Only what `ledger_regression` compares, and the client id they are for.
    """
    recorded = {key: figures[key] for key in RECORDED_FIGURES if key in figures}
    return {**recorded, CLIENT_ID_KEY: float(client_id)}


def check_recorded_ledger(
    recorded: Mapping[str, Any], *, client_id: int, state_dir: Path
) -> None:
    """Refuse a round whose ledger in `state_dir` holds less than `recorded`.

    `recorded` is what `recorded_for` put in the train message. The node that
    reported it must still be the same client. Only the ledger file is read
    (`held_figures`), so a round calls this before it reads a record or
    charges; the refusal is worded as the server's would be.
    """
    expected = int(recorded[CLIENT_ID_KEY])
    if expected != client_id:
        raise FedmodelError(
            f"the server knows this node as client {expected} in this run and it "
            f"is client {client_id} now: a site keeps its id for the whole run; "
            f"start this SuperNode again with --site-id {expected}, or give site "
            f"{client_id} a SuperNode and key of its own"
        )
    problem = ledger_regression(recorded, held_figures(state_dir))
    if problem:
        raise FedmodelError(problem)
