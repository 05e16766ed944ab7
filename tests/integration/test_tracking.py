"""`tracking=mlflow` writes the run to a local MLflow file store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_mlflow_holds_config_rounds_privacy_and_artifacts(overfit_run: Path) -> None:
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(overfit_run.parent / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("fedmodel")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["num-clients"] == "1"
    assert run.data.params["privacy.mode"] == "off"
    assert run.data.tags["privacy"] == "off"
    history = client.get_metric_history(run.info.run_id, "accuracy")
    assert [m.step for m in history] == [1]
    assert "final_accuracy" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "metrics.jsonl", "resolved_config.yaml"} <= artifacts
