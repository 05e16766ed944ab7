"""`tracking=mlflow` under `flwr run`: the ServerApp logs the finished run.

`flwr run` hands the ServerApp only its two run-config keys (`overrides`,
`run-dir`), as here, over the fake Grid; before, only `fedmodel simulate`
logged to MLflow and a run started with `flwr run` was dropped without a word.
"""

from __future__ import annotations

import os
from pathlib import Path

from flwr.app import Context, RecordDict

from fedmodel.federation.server_app import main
from fedmodel.run.layout import SUMMARY_FILE
from tests.conftest import FEW_LATENCY_CALLS
from tests.fake_grid import FakeGrid

RUN = [
    "model=tiny",
    "task.max_train_examples=120",
    "task.max_test_examples=40",
    "num_clients=2",
    "num_rounds=1",
    "partition=iid",
    "finetune.batch_size=32",
    "finetune.local_epochs=1",
    "distill=off",
    *FEW_LATENCY_CALLS,
]


def test_a_flwr_run_is_logged_to_mlflow_by_the_server_app(tmp_path: Path) -> None:
    import mlflow

    store = (tmp_path / "mlruns").as_uri()
    run_dir = tmp_path / "run"
    overrides = [*RUN, "tracking=mlflow", f"tracking.uri={store}"]
    context = Context(
        run_id=1,
        node_id=0,
        node_config={},
        state=RecordDict(),
        run_config={"overrides": " ".join(overrides), "run-dir": str(run_dir)},
    )
    main(FakeGrid(2), context)
    assert (run_dir / SUMMARY_FILE).is_file()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("fedmodel")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["run_dir"] == str(run_dir)
    assert run.data.params["num_rounds"] == "1"
    assert "privacy_epsilon" in run.data.metrics
