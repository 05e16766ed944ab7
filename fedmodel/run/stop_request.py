"""Ctrl-C's (or SIGTERM's) request that the run stop, for the server's thread.

Flower runs the ServerApp in a thread of its own, which Ctrl-C does not
reach, nor SIGTERM, which the command handles as it does Ctrl-C. While the
command tears the simulation down and says the run was interrupted, that
thread would go on: it could start another round and even conclude the run
(export, distil, write an ok summary.json), so the folder would say
"finished" while the user was told "interrupted". The command sets
`STOP_REQUESTED` the moment the signal arrives; the server checks it before each
round, again before it sends the round's train messages (which charge the
clients' ledgers; choosing them may take a ledger query's round trip), before
it takes a round's replies, and before it finishes the run.
"""

from __future__ import annotations

import threading

from fedmodel.errors import FedmodelError

# Process-wide: one simulation's server runs in a process at a time.
STOP_REQUESTED = threading.Event()


class RunStopped(FedmodelError):
    """The run was stopped by Ctrl-C or SIGTERM; the folder is kept."""


def check_not_stopped(before: str) -> None:
    """Raise RunStopped if a stop was requested; `before` names what would follow.

    Whatever the run wrote so far stays as it was: every aggregated round is
    in its checkpoint, and a resume goes on from there.
    """
    if STOP_REQUESTED.is_set():
        raise RunStopped(f"the run was stopped (Ctrl-C or SIGTERM) before {before}")
