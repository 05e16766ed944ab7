"""The console shows fedmodel's lines; the run's log file gets every line."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from fedmodel.errors import FedmodelError
from fedmodel.run.console import VERBOSE_ENV, close_log_file, setup_logging
from fedmodel.run.layout import LOG_FILE
from fedmodel.run.stop_request import STOP_REQUESTED


def _flower_console(message: str, level: int = logging.WARNING) -> str:
    """What Flower's own console handler prints for one of its log lines.

    The handler is pointed at a buffer meanwhile: it holds whatever stdout was
    when Flower set it up, which under pytest may be an earlier test's capture.
    """
    import flwr.common.logger  # noqa: F401  (adds Flower's console handler)

    flower = logging.getLogger("flwr")
    consoles = [
        h
        for h in flower.handlers
        if isinstance(h, logging.StreamHandler)
        and not isinstance(h, logging.FileHandler)
    ]
    assert consoles, "Flower's console handler is gone"
    buffer = io.StringIO()
    streams = [h.stream for h in consoles]
    for handler in consoles:
        handler.stream = buffer
    try:
        flower.log(level, message)
    finally:
        for handler, stream in zip(consoles, streams, strict=True):
            handler.stream = stream
    return buffer.getvalue()


def test_only_fedmodel_lines_on_the_console_and_all_in_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import flwr.common.logger  # noqa: F401

    setup_logging(tmp_path)
    logging.getLogger("fedmodel.somewhere").info("our progress line")
    console = capsys.readouterr().err
    assert "fedmodel our progress line" in console
    assert _flower_console("flower chatter") == ""
    close_log_file()
    log = (tmp_path / LOG_FILE).read_text()
    assert "INFO fedmodel.somewhere: our progress line" in log
    assert "WARNING flwr: flower chatter" in log


@pytest.mark.parametrize(
    "name, routine",
    [
        # A deployment's ServerApp logs each SuperLink request through httpx.
        ("httpx", "HTTP Request: POST /v1/runtime/push-logs"),
        # MLflow's database store runs alembic, which logs each plugin.
        ("alembic.runtime.plugins", "setup plugin alembic.autogenerate.schemas"),
    ],
)
def test_routine_library_lines_stay_out_of_the_log_unless_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, routine: str
) -> None:
    setup_logging(tmp_path / "quiet")
    logging.getLogger(name).info(routine)
    logging.getLogger(name).warning("something to know")
    monkeypatch.setenv(VERBOSE_ENV, "1")
    setup_logging(tmp_path / "verbose")
    logging.getLogger(name).info(f"{routine}, verbose")
    close_log_file()
    quiet = (tmp_path / "quiet" / LOG_FILE).read_text()
    assert routine not in quiet
    assert f"WARNING {name}: something to know" in quiet
    assert f"{routine}, verbose" in (tmp_path / "verbose" / LOG_FILE).read_text()


def test_verbose_shows_flowers_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VERBOSE_ENV, "1")
    setup_logging(tmp_path)
    assert "flower chatter" in _flower_console("flower chatter")


def test_a_second_setup_moves_the_log_file(tmp_path: Path) -> None:
    setup_logging(tmp_path / "a")
    setup_logging(tmp_path / "b")
    logging.getLogger("fedmodel").info("second run")
    close_log_file()
    assert "second run" not in (tmp_path / "a" / LOG_FILE).read_text()
    assert "second run" in (tmp_path / "b" / LOG_FILE).read_text()


@pytest.mark.usefixtures("no_stop_request")  # a stop would keep them off
def test_a_librarys_errors_still_reach_the_console(tmp_path: Path) -> None:
    setup_logging(tmp_path)
    assert "flower failed" in _flower_console("flower failed", logging.ERROR)


@pytest.mark.usefixtures("no_stop_request")
def test_once_a_stop_is_asked_for_a_librarys_errors_go_to_the_log_only(
    tmp_path: Path,
) -> None:
    """Ctrl-C mid-round: Flower logs the Ray actors the stop ends as errors."""
    setup_logging(tmp_path)
    STOP_REQUESTED.set()
    lost = "The actor died unexpectedly before finishing this task."
    assert _flower_console(lost, logging.ERROR) == ""
    close_log_file()
    assert f"ERROR flwr: {lost}" in (tmp_path / LOG_FILE).read_text()


def test_without_a_run_folder_nothing_reaches_a_root_console_handler() -> None:
    """A Ray worker's root logger prints; our lines must not print there twice."""
    import flwr.common.logger  # noqa: F401

    stream = io.StringIO()
    worker_root = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(worker_root)
    try:
        setup_logging()
        logging.getLogger("flwr").warning("Manually terminating ClientAppActor")
        logging.getLogger("fedmodel.client").warning("a ledger warning")
    finally:
        root.removeHandler(worker_root)
    assert stream.getvalue() == ""


def test_a_root_console_handler_a_library_added_prints_no_line_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opacus calls `logging.basicConfig` on import: a root handler on stderr.

    Under `flwr run` that happens before the ServerApp's log file exists, and
    once the root holds the file, fedmodel's lines reach that handler too.
    """
    import sys

    library_root = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(library_root)
    try:
        setup_logging(tmp_path)
        logging.getLogger("fedmodel.server").info("round 1/2 done")
        logging.getLogger("flwr").info("Received 2 results")
        logging.getLogger("opacus").error("a library error")
    finally:
        root.removeHandler(library_root)
        close_log_file()
    console = capsys.readouterr().err
    assert console.count("round 1/2 done") == 1
    assert "Received 2 results" not in console
    assert "a library error" in console
    log = (tmp_path / LOG_FILE).read_text()
    assert "round 1/2 done" in log and "Received 2 results" in log


def _raised(error: BaseException) -> BaseException:
    """`error` as Flower holds it: raised, with a traceback through frames."""
    try:
        raise error
    except BaseException as raised:
        return raised


@pytest.mark.usefixtures("no_stop_request")
def test_a_fedmodel_error_flower_logs_is_one_line_with_no_traceback(
    tmp_path: Path,
) -> None:
    """Under `flwr run`, a refused start: "Simulation raised an exception"."""
    import flwr.common.logger  # noqa: F401

    setup_logging(tmp_path)
    refused = FedmodelError("the federation has 3 nodes but num_clients is 2")
    flower = logging.getLogger("flwr")
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    flower.addHandler(console)
    try:
        flower.error("%s raised an exception", "Simulation", exc_info=_raised(refused))
        wrapped = RuntimeError("An error was encountered. Ending simulation.")
        wrapped.__cause__ = refused
        flower.error("An exception occurred", exc_info=_raised(wrapped))
        flower.error("ClientApp raised an exception", exc_info=_raised(KeyError("x")))
    finally:
        flower.removeHandler(console)
        close_log_file()
    lines = stream.getvalue().splitlines()
    assert lines[:2] == [
        "Simulation raised an exception: the federation has 3 nodes but "
        "num_clients is 2",
        "An exception occurred: the federation has 3 nodes but num_clients is 2",
    ]
    # Another error keeps its traceback, on the console and in the log.
    assert lines[2:4] == [
        "ClientApp raised an exception",
        "Traceback (most recent call last):",
    ]
    log = (tmp_path / LOG_FILE).read_text()
    assert log.count("Traceback") == 1
    assert "ERROR flwr: Simulation raised an exception: the federation has 3" in log


@pytest.mark.usefixtures("no_stop_request")
def test_flowers_errors_show_once_beside_a_root_console_handler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under `flwr run` each Flower error showed twice: its handler's, Opacus's."""
    import sys

    library_root = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(library_root)
    try:
        setup_logging(tmp_path)
        flower = _flower_console("Exit Code: 700", logging.ERROR)
    finally:
        root.removeHandler(library_root)
        close_log_file()
    assert "Exit Code: 700" in flower
    assert "Exit Code: 700" not in capsys.readouterr().err
