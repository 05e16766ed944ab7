"""What each Ray worker of a simulation runs as it starts (Ray imports it there).

Kept apart from `simulation` so that a worker imports only Flower's logger
and fedmodel's console setup, not the whole simulation's modules.
"""

from __future__ import annotations

# Flower's logger gets its console handler when this is imported; imported
# first, the handler is there for `setup_logging` to filter.
import flwr.supercore.logger  # noqa: F401

from fedmodel.run.console import setup_logging


def set_up_logging() -> None:
    """Set up fedmodel's logging in this worker, Flower's console lines filtered.

    A client actor sets it up again for each message; this covers an actor
    that is ended before it gets one, whose "Manually terminating
    ClientAppActor" warning would otherwise reach the console.
    """
    setup_logging()
