"""`tracking=mlflow`: the ServerApp logs the run it wrote up, under `flwr run` too.

`flwr run` hands the ServerApp only its two run-config keys (`overrides`,
`run-dir`), as here, over the fake Grid; before, only `fedmodel simulate`
logged to MLflow and a run started with `flwr run` was dropped without a word.
A run that failed after writing its summary is logged too, marked failed
(before, it was not logged at all), and a store MLflow cannot write is named.
An http(s) server that takes no connection is refused before the run starts.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.federation.server_app import main
from fedmodel.run import reachable
from fedmodel.run.layout import SUMMARY_FILE
from fedmodel.run.summary import RunFailed
from fedmodel.run.tracking import TRACKED_KEY, check_tracker_reachable, track_run
from tests.conftest import small_settings
from tests.fake_grid import FAKE_GRID_RUN, FakeGrid, flwr_run_context
from tests.integration.loopback import free_port

RUN = [*FAKE_GRID_RUN, "distill=off"]


def _flwr_run(grid: FakeGrid, tmp_path: Path) -> None:
    """Run the ServerApp as `flwr run` would, tracked in tmp_path/mlruns."""
    overrides = [*RUN, "tracking=mlflow", f"tracking.uri={_store(tmp_path)}"]
    main(grid, flwr_run_context(overrides, tmp_path / "run"))


def _store(tmp_path: Path) -> str:
    return (tmp_path / "mlruns").as_uri()


def _logged_run(tmp_path: Path) -> Any:
    """The one MLflow run the store holds, checked against the run folder."""
    import mlflow

    assert (tmp_path / "run" / SUMMARY_FILE).is_file()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=_store(tmp_path))
    experiment = client.get_experiment_by_name("fedmodel")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["run_dir"] == str(tmp_path / "run")
    assert run.data.params["num_rounds"] == "1"
    assert "privacy_epsilon" in run.data.metrics
    return run


def test_a_flwr_run_is_logged_to_mlflow_by_the_server_app(tmp_path: Path) -> None:
    _flwr_run(FakeGrid(2), tmp_path)
    run = _logged_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.tags["status"] == "ok"
    # What `fedmodel resume` reads to know the run was tracked.
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary[TRACKED_KEY] == run.info.run_id


def test_a_failed_run_is_logged_as_failed(tmp_path: Path) -> None:
    grid = FakeGrid(2, nan_updates=True)
    with pytest.raises(RunFailed, match="no client returned an update"):
        _flwr_run(grid, tmp_path)
    run = _logged_run(tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags["status"] == "failed"


def test_a_store_mlflow_cannot_write_is_named(tmp_path: Path) -> None:
    # Before, MLflow's own FileNotFoundError ended the command in a traceback.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / SUMMARY_FILE).write_text('{"status": "ok"}')
    store = (tmp_path / "missing" / "mlruns").as_uri()
    (tmp_path / "missing").write_text("a file where a folder would go")
    settings = small_settings("tracking=mlflow", f"tracking.uri={store}")
    with pytest.raises(FedmodelError) as refused:
        track_run(settings, run_dir)
    assert str(refused.value).startswith(f"MLflow could not log {run_dir} to {store}")
    assert "set tracking.uri to a store MLflow can reach and write, or " in str(
        refused.value
    )


def test_a_client_charged_more_than_it_reported_is_logged_at_its_charge(
    tmp_path: Path,
) -> None:
    # A client whose last updates were refused reported less than its ledger
    # was charged (or nothing); summary.json's guarantee takes the larger, and
    # MLflow's client_<i>_epsilon logged the report alone, or no figure at all.
    import mlflow

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    clients = [
        {"client_id": 0, "epsilon": 1.5, "ledger_epsilon": 2.5, "steps": 10},
        {"client_id": 1, "epsilon": None, "ledger_epsilon": 0.7, "steps": None},
    ]
    (run_dir / SUMMARY_FILE).write_text(
        json.dumps({"status": "ok", "clients": clients})
    )
    settings = small_settings("tracking=mlflow", f"tracking.uri={_store(tmp_path)}")
    run_id = track_run(settings, run_dir)
    metrics = mlflow.MlflowClient(tracking_uri=_store(tmp_path)).get_run(run_id)
    logged = metrics.data.metrics
    assert logged["client_0_epsilon"] == 2.5
    assert logged["client_1_epsilon"] == 0.7


@pytest.mark.usefixtures("no_proxy")
def test_an_mlflow_server_nothing_answers_at_is_refused_before_the_run() -> None:
    # Before, MLflow was first asked once the run had finished, and retried
    # such a server for minutes.
    uri = f"http://127.0.0.1:{free_port()}"
    settings = small_settings("tracking=mlflow", f"tracking.uri={uri}")
    with pytest.raises(FedmodelError) as refused:
        check_tracker_reachable(settings)
    message = str(refused.value)
    assert message.startswith(f"tracking.uri={uri!r}: nothing takes a connection")
    assert f"at {uri.removeprefix('http://')} " in message
    assert "start the MLflow server there" in message and "tracking=none" in message


@pytest.mark.usefixtures("no_proxy")
def test_a_name_lookup_that_hangs_is_refused_within_the_connect_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The connect's timeout did not bound the lookup: a resolver that hung
    # held the start as long as it did (here 10 s, for a limit of 0.5 s).
    answered = threading.Event()

    def hung(*_: object, **__: object) -> NoReturn:
        answered.wait(10)
        raise socket.gaierror("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    monkeypatch.setattr(reachable, "START_CONNECT_SECONDS", 0.5)
    uri = "http://tracker.invalid:5000"
    settings = small_settings("tracking=mlflow", f"tracking.uri={uri}")
    began = time.monotonic()
    try:
        with pytest.raises(FedmodelError) as refused:
            check_tracker_reachable(settings)
        assert time.monotonic() - began < 3
    finally:
        answered.set()
    message = str(refused.value)
    assert message.startswith(f"tracking.uri={uri!r}: nothing takes a connection")
    assert "(looking up tracker.invalid took over 0.5 s)" in message


@pytest.mark.parametrize(
    ("overrides", "proxy"),
    [
        (["tracking=mlflow", "tracking.uri=file:///nowhere/mlruns"], None),
        (["tracking=mlflow"], None),  # ./mlruns
        (["tracking=none", "tracking.uri=http://127.0.0.1:{port}"], None),
        (["tracking=mlflow", "tracking.uri=http://127.0.0.1:{port}"], "http"),
    ],
)
@pytest.mark.usefixtures("no_proxy")
def test_no_connection_is_tried_where_none_would_tell(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str], proxy: str | None
) -> None:
    # A proxy, not this machine, reaches the server MLflow's requests go to.
    if proxy is not None:
        monkeypatch.setenv(f"{proxy}_proxy", "http://proxy.invalid:3128")
    monkeypatch.setattr(socket, "create_connection", _no_connection)
    port = free_port()
    check_tracker_reachable(small_settings(*(o.format(port=port) for o in overrides)))


def _no_connection(*_: object, **__: object) -> NoReturn:
    raise AssertionError("a connection was tried")
