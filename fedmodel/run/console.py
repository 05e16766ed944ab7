"""Console output: one timestamped line per progress event, and user errors."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TextIO

from fedmodel.errors import FedmodelError


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is at the time of writing.

    A handler bound to the stderr of its creation keeps writing there after a
    caller (pytest's capture, a tool embedding fedmodel) has replaced it.
    """

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def setup_logging() -> None:
    """Send fedmodel's INFO lines to stderr (once per process)."""
    logger = logging.getLogger("fedmodel")
    if not logger.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(
            logging.Formatter("%(asctime)s fedmodel %(message)s", datefmt="%H:%M:%S")
        )
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Flower prints through its own handler; passing its records on to the
    # root logger as well would print each line twice.
    logging.getLogger("flwr").propagate = False


def reports_user_errors(command: Callable[[], None]) -> Callable[[], None]:
    """Wrap a console command: a FedmodelError prints its message and exits 2.

    Errors a user can cause then never surface as a traceback.
    """

    @functools.wraps(command)
    def run() -> None:
        setup_logging()
        try:
            command()
        except FedmodelError as exc:
            logging.getLogger("fedmodel").error("%s", exc)
            raise SystemExit(2) from None

    return run
