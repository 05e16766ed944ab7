"""Console output: one timestamped line per progress event."""

from __future__ import annotations

import logging


def setup_logging() -> None:
    """Send fedmodel's INFO lines to stderr (once per process)."""
    logger = logging.getLogger("fedmodel")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s fedmodel %(message)s", datefmt="%H:%M:%S")
        )
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Flower prints through its own handler; passing its records on to the
    # root logger as well would print each line twice.
    logging.getLogger("flwr").propagate = False
