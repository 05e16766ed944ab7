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
