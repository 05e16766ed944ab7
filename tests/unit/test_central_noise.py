"""privacy=central: the server's noise covers the norm the round clipped to."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedmodel.errors import FedmodelError
from fedmodel.federation.central_dp import (
    _LedgeredAdaptiveClipping,
    next_clipping_norm,
)
from fedmodel.federation.messages import ARRAYS_KEY, METRICS_KEY
from fedmodel.privacy.client_level import plan_client_level
from fedmodel.privacy.ledger import PrivacyLedger
from tests.conftest import reply_metadata, small_settings

SIZE = 200_000


def _reply(node: int, update: np.ndarray) -> Message:
    content = RecordDict(
        {
            ARRAYS_KEY: ArrayRecord({"w": Array(update)}),
            METRICS_KEY: MetricRecord({"num-examples": 10.0}),
        }
    )
    return Message(content=content, metadata=reply_metadata(node))


def test_the_noise_covers_the_norm_the_round_clipped_to(tmp_path: Path) -> None:
    # Every update is far above the norm, so every one is clipped and the norm
    # moves for the next round; a large step makes the two norms far apart.
    settings = small_settings("privacy=central", "privacy.clip_norm_lr=1.0")
    ledger = PrivacyLedger.open(
        tmp_path / "ledger.json",
        client_id="server",
        plan=plan_client_level(settings),
        data_fingerprint="test",
    )
    dp = _LedgeredAdaptiveClipping(
        FedAvg(weighted_by_key="num-examples"), settings=settings, ledger=ledger
    )
    dp.current_arrays = ArrayRecord({"w": Array(np.zeros(SIZE, dtype=np.float64))})
    update = np.full(SIZE, 1.0)
    replies = [_reply(node, update) for node in range(1, dp.num_sampled_clients + 1)]
    clipped_to = dp.clipping_norm
    np.random.seed(0)  # Flower draws its noise from numpy's global generator

    aggregated, _ = dp.aggregate_train(1, replies)

    assert aggregated is not None
    clipped_mean = clipped_to / np.sqrt(SIZE)  # each coordinate of a clipped update
    noise = aggregated.to_numpy_ndarrays()[0] - clipped_mean
    needed = dp.noise_multiplier * clipped_to / dp.num_sampled_clients
    assert noise.std() == pytest.approx(needed, rel=0.02)
    # The norm still adapts, for the next round, from the noised count of
    # clipped updates (Flower's first draw after the seed), in the paper's
    # direction: every update was clipped, so it grows unless the count's
    # noise took the fraction under the target.
    np.random.seed(0)
    m = dp.num_sampled_clients
    clipped_fraction = np.random.normal(m, dp.clipped_count_stddev) / m
    assert dp.clipping_norm == pytest.approx(
        clipped_to * np.exp(1.0 * (clipped_fraction - 0.5))
    )
    assert len(ledger.history) == 1


@pytest.mark.parametrize(
    ("clipped_fraction", "moves"), [(1.0, "up"), (0.0, "down"), (0.5, "not")]
)
def test_the_norm_settles_where_the_target_fraction_is_clipped(
    clipped_fraction: float, moves: str
) -> None:
    # Andrew et al.: too many updates clipped means the norm is too small.
    norm = next_clipping_norm(2.0, clipped_fraction, target=0.5, step=0.2)
    assert {"up": norm > 2.0, "down": norm < 2.0, "not": norm == 2.0}[moves]


@pytest.mark.parametrize(
    "overrides",
    [
        ("strategy.fraction_train=0.5", "strategy.min_train_clients=1"),
        ("strategy.fraction_train=0.25", "strategy.min_train_clients=2"),
    ],
)
def test_client_level_dp_refuses_sampling_some_of_the_clients(
    overrides: tuple[str, ...],
) -> None:
    # Fixed-size sampling is not the Poisson sampling the accountant's q
    # assumes: the plan is refused, not accounted at q = m / N.
    settings = small_settings("privacy=central", "num_clients=4", *overrides)
    with pytest.raises(FedmodelError, match=r"samples 2 of 4 clients") as info:
        plan_client_level(settings)
    assert "strategy.fraction_train=1" in str(info.value)
    # The way out it names composes: it read privacy=dp, no such option.
    for option in re.findall(r"privacy=(\w+)", str(info.value)):
        small_settings(f"privacy={option}")


def test_client_level_dp_claims_no_amplification_by_sampling() -> None:
    # fraction 0.5 with min_train_clients=4 still samples every client.
    for overrides in [
        (),
        ("strategy.fraction_train=0.5", "strategy.min_train_clients=4"),
    ]:
        settings = small_settings("privacy=central", "num_clients=4", *overrides)
        assert plan_client_level(settings).sample_rate == 1.0
