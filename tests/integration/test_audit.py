"""`fedmodel audit` on real runs of the tiny model, and the MLflow record of one.

The overfitting run is built once for this file's tests (a module fixture:
under `make test`'s workers a session fixture would be built once per worker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.federation.simulation import simulate
from fedmodel.research.audit import audit_run
from tests.conftest import logging_restored, small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FEDMODEL = Path(sys.executable).parent / "fedmodel"

# One client holding 100 training records (plus canaries) and 100 held-out
# ones, full fine-tuning for 15 epochs: a non-private run memorises.
OVERFIT = [
    "num_clients=1",
    "task.max_train_examples=200",
    "task.val_fraction=0.5",
    "num_rounds=1",
    "finetune=full",
    "finetune.learning_rate=0.005",
    "finetune.local_epochs=15",
    "finetune.batch_size=16",
    "audit.canaries=20",
    "audit.reference_canaries=60",
    # The audit measures the trained model itself: no warm start, no student,
    # and no keep_best, which could keep the public start (it memorises nothing).
    "warm_start.enabled=false",
    "distill=off",
    "keep_best=false",
]


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished non-private run with canaries, also logged to MLflow."""
    base = tmp_path_factory.mktemp("overfit")
    config = small_config(
        *OVERFIT,
        "privacy=off",
        "tracking=mlflow",
        f"tracking.uri={(base / 'mlruns').as_uri()}",
    )
    # Outside the per-test fixture's reach (module scope): undo its logging here.
    with logging_restored():
        simulate(config, run_dir=base / "run")
    return base / "run"


@pytest.fixture(scope="module")
def overfit_audit(overfit_run: Path) -> subprocess.CompletedProcess[str]:
    """`fedmodel audit` of the overfitting run, once: it writes audit.json there."""
    return subprocess.run(
        [str(FEDMODEL), "audit", str(overfit_run)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _audit_file(overfit_run: Path, done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((overfit_run / "audit.json").read_text())


def test_audit_reports_auc_bound_and_canary_exposure(
    overfit_run: Path, overfit_audit: subprocess.CompletedProcess[str]
) -> None:
    done = overfit_audit
    report = _audit_file(overfit_run, done)
    records, canaries = report["records"], report["canaries"]
    for attack in (records, canaries):
        assert 0.0 <= attack["auc"] <= 1.0
        assert attack["bound"]["epsilon"] >= 0.0
        assert attack["bound"]["confidence"] == 0.95
    # 100 members (the 20 canaries left out) and 100 held-out records, halved.
    assert records["bound"]["members"] == 50
    assert records["bound"]["non_members"] == 50
    assert canaries["bound"]["members"] == 10
    assert canaries["bound"]["non_members"] == 30
    assert report["claimed_epsilon"] is None and report["consistent"] is True
    assert report["canary_exposure_max"] >= report["canary_exposure_mean"] >= 0.0
    assert "AUC" in done.stdout
    # Library progress bars stay off the console.
    assert "Loading weights" not in done.stderr


def test_non_private_run_is_clearly_more_exposed_than_epsilon_1(
    overfit_run: Path,
    overfit_audit: subprocess.CompletedProcess[str],
    tmp_path: Path,
) -> None:
    private_dir = tmp_path / "eps1"
    simulate(
        small_config(*OVERFIT, "privacy=dpsgd", "privacy.target_epsilon=1"),
        run_dir=private_dir,
    )
    # The open run's audit is the one `fedmodel audit` wrote (audit_run's
    # report as a dict), not a second audit of the same run.
    open_run, private = _audit_file(overfit_run, overfit_audit), audit_run(private_dir)

    assert open_run["records"]["auc"] > 0.65
    assert open_run["records"]["auc"] > private.records.auc + 0.15
    assert open_run["canaries"] is not None and private.canaries is not None
    assert open_run["canaries"]["auc"] > private.canaries.auc + 0.15
    assert open_run["canary_exposure_mean"] > private.canary_exposure_mean
    # The non-private run leaks measurably; the private one stays below its claim.
    assert open_run["records"]["bound"]["epsilon"] > 0.0
    assert private.claimed_epsilon is not None and private.claimed_epsilon <= 1.0
    assert private.records.bound.epsilon <= private.claimed_epsilon
    assert private.canaries.bound.epsilon <= private.claimed_epsilon
    assert open_run["consistent"] and private.consistent


def test_audit_of_a_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(FEDMODEL), "audit", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "half").mkdir()
    with pytest.raises(FedmodelError, match="no resolved_config.yaml"):
        audit_run(tmp_path / "half")


def test_audit_of_an_unknown_client_is_a_clear_error(overfit_run: Path) -> None:
    with pytest.raises(FedmodelError, match="out of range"):
        audit_run(overfit_run, client=3)


def test_mlflow_holds_config_rounds_privacy_and_artifacts(overfit_run: Path) -> None:
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(overfit_run.parent / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("fedmodel")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["num_clients"] == "1"
    assert run.data.params["privacy.mode"] == "off"
    assert run.data.tags["privacy"] == "off"
    history = client.get_metric_history(run.info.run_id, "accuracy")
    assert [m.step for m in history] == [1]
    assert "final_accuracy" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "metrics.jsonl", "resolved_config.yaml"} <= artifacts
