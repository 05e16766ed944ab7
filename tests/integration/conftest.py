"""Shared integration fixtures: an overfitting run (audit, tracking), a loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedmodel.federation.simulation import simulate
from tests.conftest import logging_restored, small_config
from tests.integration.loopback import Loopback

# One client holding 100 training records (plus canaries) and 100 held-out
# ones, full fine-tuning for 30 epochs: a non-private run memorises.
OVERFIT = [
    "num_clients=1",
    "task.max_train_examples=200",
    "task.val_fraction=0.5",
    "num_rounds=1",
    "finetune=full",
    "finetune.learning_rate=0.005",
    "finetune.local_epochs=30",
    "finetune.batch_size=16",
    "audit.canaries=20",
    "audit.reference_canaries=60",
    # The audit measures the trained model itself; keep_best could keep the
    # public start, which memorises nothing.
    "keep_best=false",
]


@pytest.fixture(scope="session")
def overfit_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished non-private run with canaries, also logged to MLflow."""
    base = tmp_path_factory.mktemp("overfit")
    config = small_config(
        *OVERFIT,
        "privacy=off",
        "tracking=mlflow",
        f"tracking.uri={(base / 'mlruns').as_uri()}",
    )
    # Outside the per-test fixture's reach (session scope): undo its logging here.
    with logging_restored():
        simulate(config, run_dir=base / "run")
    return base / "run"


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[Loopback]:
    """A loopback federation in `tmp_path`; every process it started is stopped."""
    federation = Loopback(tmp_path)
    try:
        yield federation
    finally:
        federation.stop()
