"""Seeds of a client's round: a stream of its own per (seed, use, client, round).

Each random use of a client's local round (its batch order, its dropout
masks) draws from its own stream of the run's `seed`, so a round repeats in
every run of the seed, yet no other client, round or seed repeats it (under
`seed + round`, seed 42's round 2 shuffled as seed 43's round 1). Under
DP-SGD neither stream is what a record's batch or mask comes from: Opacus'
Poisson sampler and the dropout draw from the operating system
(`privacy/engine.py`, `client/local_round.py::seed_dropout`).
"""

from __future__ import annotations

import numpy as np

# Tell the uses of one (seed, client, round) apart.
_BATCH_ORDER_STREAM = 0xBA7C
_DROPOUT_STREAM = 0xD209


def batch_order_seed(seed: int, *, client_id: int, round_number: int) -> int:
    """The seed of the order a client's loader shuffles its records in a round."""
    return _round_seed(
        seed,
        stream=_BATCH_ORDER_STREAM,
        client_id=client_id,
        round_number=round_number,
    )


def dropout_seed(seed: int, *, client_id: int, round_number: int) -> int:
    """The seed of a client's dropout masks in a round (without DP-SGD)."""
    return _round_seed(
        seed, stream=_DROPOUT_STREAM, client_id=client_id, round_number=round_number
    )


def _round_seed(seed: int, *, stream: int, client_id: int, round_number: int) -> int:
    draw = np.random.default_rng([seed, stream, client_id, round_number])
    return int(draw.integers(2**63))
