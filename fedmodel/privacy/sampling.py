"""How Opacus' Poisson loader samples a client's records: its rate and its steps.

Calibration must plan with exactly the sample rate and batch count the DP
loader will use, so both are computed the way Opacus computes them.
"""

from __future__ import annotations

import math

from opacus.utils.uniform_sampler import UniformWithReplacementSampler


def sample_rate_for(num_records: int, batch_size: int) -> float:
    """Return the Poisson sampling rate Opacus uses for a loader of `batch_size`.

    `DPDataLoader.from_data_loader` takes 1 / len(loader), and a loader without
    `drop_last` has ceil(n / batch_size) batches.
    """
    if num_records < 1 or batch_size < 1:
        raise ValueError(
            f"num_records and batch_size must be >= 1, got {num_records} and "
            f"{batch_size}"
        )
    return 1.0 / math.ceil(num_records / batch_size)


def poisson_steps_per_epoch(num_records: int, batch_size: int) -> int:
    """Return how many batches Opacus' Poisson loader yields per epoch.

    Its sampler yields int(1 / sample_rate) batches, which floating point makes
    one fewer than ceil(n / batch_size) for some sizes (93 batches -> 92), so
    the count is taken from the sampler itself.
    """
    sampler = UniformWithReplacementSampler(
        num_samples=num_records, sample_rate=sample_rate_for(num_records, batch_size)
    )
    return len(sampler)
