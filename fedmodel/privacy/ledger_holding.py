"""What a client's privacy ledger file holds, read without opening it to charge.

Before a round trains, what a client's ledger holds is compared with what the
server recorded (`federation/ledger_query.py`, `federation/continuity.py`): by
the client, where its train message carries the record, or by the server,
which asks the client. Either way the figures come from the file alone: no
training record is read, no accountant is run, nothing is charged.
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.privacy.figure_keys import EPSILON_KEY, LEDGER_RESETS_KEY, STEPS_KEY
from fedmodel.privacy.ledger_record import LEDGER_FILE, read_record
from fedmodel.privacy.ledger_reset import reset_count


def held_figures(state_dir: Path) -> dict[str, float]:
    """The steps and epsilon the ledger in `state_dir` holds, and its reset count.

    Where there is no ledger file it holds 0 steps and epsilon 0; a file that
    cannot be read is a FedmodelError naming it. The epsilon is the one its
    last charge stored: a round checks it against the history before it
    charges (`ledger_check.checked_epsilon`), which takes an accountant call.
    """
    path = state_dir / LEDGER_FILE
    steps, epsilon = 0, 0.0
    if path.is_file():
        record = read_record(path)
        steps = record.steps
        epsilon = record.rounds[-1].epsilon if record.rounds else 0.0
    return {
        STEPS_KEY: float(steps),
        EPSILON_KEY: epsilon,
        LEDGER_RESETS_KEY: float(reset_count(state_dir)),
    }
