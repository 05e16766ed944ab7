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
reports) starts a budget again, and never a simulated client's. The rule
itself is `privacy/ledger_holding.ledger_regression`, which a resumed
simulation's check before Flower starts (`client/record_check.py`) applies too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedmodel.errors import FedmodelError
from fedmodel.federation.messages import CLIENT_ID_KEY
from fedmodel.privacy.figure_keys import EPSILON_KEY, LEDGER_RESETS_KEY, STEPS_KEY
from fedmodel.privacy.ledger_holding import held_figures, ledger_regression

# The figures `ledger_regression` compares, as a train message carries them.
RECORDED_FIGURES = (STEPS_KEY, EPSILON_KEY, LEDGER_RESETS_KEY)


def recorded_for(client_id: int, figures: Mapping[str, float]) -> dict[str, float]:
    """What a train message carries to the node that reported `figures` as `client_id`.

    Only what `ledger_regression` compares, and the client id they are for.
    """
    recorded = {key: figures[key] for key in RECORDED_FIGURES if key in figures}
    return {**recorded, CLIENT_ID_KEY: float(client_id)}


def check_recorded_ledger(
    recorded: Mapping[str, Any], *, client_id: int, state_dir: Path, simulated: bool
) -> None:
    """Refuse a round whose ledger in `state_dir` holds less than `recorded`.

    `recorded` is what `recorded_for` put in the train message. The node that
    reported it must still be the same client. Only the ledger file is read
    (`held_figures`), so a round calls this before it reads a record or
    charges; the refusal is worded as the server's would be. A `simulated`
    client's archived ledger is no new budget (`ledger_regression`).
    """
    expected = int(recorded[CLIENT_ID_KEY])
    if expected != client_id:
        raise FedmodelError(
            f"the server knows this node as client {expected} in this run and it "
            f"is client {client_id} now: a site keeps its id for the whole run; "
            f"start this SuperNode again with --site-id {expected}, or give site "
            f"{client_id} a SuperNode and key of its own"
        )
    # `simulated` words it for this client already: no LedgerRefusal, whose
    # in-a-run wording would be these words again or, at a site, never shown.
    problem = ledger_regression(recorded, held_figures(state_dir), in_a_run=simulated)
    if problem:
        raise FedmodelError(problem)
