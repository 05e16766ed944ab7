"""A stop at any step of a run's finishing leaves no finished run without its cards.

After the last round the server exports the teacher, distils, exports the
student (float and int8 graphs), times both, writes the model cards, the plot
and summary.json. A Ctrl-C there ends the command while the ServerApp's thread
is at any of those steps (`cli/interrupted.stop_interrupted` exits the
process), as a kill does. Only summary.json's "ok" says the run finished
(`fedmodel resume` refuses such a run), so at every step's start and end the
folder must not say so before each exported model has its card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.distill import describe, distilled_student, finish
from fedmodel.federation import server_finish
from fedmodel.federation.server_app import run_federation
from fedmodel.run import summary as summary_module
from tests.conftest import logging_restored
from tests.fake_grid import FakeGrid
from tests.unit.test_distill_resume import TRANSFER_TEXTS
from tests.unit.test_rounds import TINY_RUN

# Each finishing step, in the order the run takes them, by module and name.
STEPS = [
    (finish, "export_and_describe"),  # the teacher
    (distilled_student, "distill_on_server"),
    (distilled_student, "describe_student"),  # the student, float and int8
    (describe, "describe_quantized"),
    (finish, "add_served_latency"),
    (server_finish, "write_model_cards"),
    (server_finish, "plot_progress"),
    (summary_module, "write_json"),  # summary.json
]


pytestmark = pytest.mark.usefixtures("no_stop_request")


def _settings(run_dir: Path, *overrides: str) -> RunSettings:
    raw = compose_config([*TINY_RUN, "num_rounds=1", *overrides])
    return settings_from_dict({**raw, "run_dir": str(run_dir)})


def _finished(run_dir: Path) -> dict[str, Any] | None:
    """summary.json where it says the run finished, else None."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if summary["status"] == "ok" else None


def _cards(run_dir: Path) -> dict[str, str]:
    return {
        folder: (run_dir / folder / "README.md").read_text()
        for folder in ("model", "student")
        if (run_dir / folder / "README.md").is_file()
    }


def _check_stop_here(run_dir: Path, step: str, seen: list[str]) -> None:
    """A stop now: a finished run must have each of its models' cards."""
    seen.append(step)
    summary = _finished(run_dir)
    if summary is None:
        return
    folders = {"model"} | ({"student"} if "student" in summary else set())
    assert set(_cards(run_dir)) >= folders, f"finished without a card at {step}"


def test_no_step_of_the_finishing_leaves_a_finished_run_without_its_cards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    seen: list[str] = []
    for module, name in STEPS:
        checked = _checked(run_dir, name, getattr(module, name), seen)
        monkeypatch.setattr(module, name, checked)
    texts = tmp_path / "transfer.txt"
    texts.write_text(TRANSFER_TEXTS + "\n")
    settings = _settings(
        run_dir,
        "distill=server",
        "distill.epochs=1",
        "distill.augment_copies=0",
        "distill.student.num_layers=1",
        f"distill.transfer_file={texts}",
    )
    with logging_restored():
        run_federation(FakeGrid(2), settings)
    assert {s.split(" ", 1)[1] for s in seen} == {name for _, name in STEPS}
    assert _finished(run_dir) is not None
    assert set(_cards(run_dir)) == {"model", "student"}


def _checked(run_dir: Path, name: str, step: Any, seen: list[str]) -> Any:
    """`step`, checking before and after it that a stop there would be safe."""

    def run(*args: Any, **kwargs: Any) -> Any:
        _check_stop_here(run_dir, f"before {name}", seen)
        result = step(*args, **kwargs)
        _check_stop_here(run_dir, f"after {name}", seen)
        return result

    return run


def test_a_stop_while_the_cards_are_written_leaves_a_run_the_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, summary.json said "ok" before the cards were written: a stop
    # there left model/ without its card, and `fedmodel resume` refused the
    # run as finished.
    run_dir = tmp_path / "run"
    with monkeypatch.context() as stop:

        def stopped(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        stop.setattr(server_finish, "write_model_cards", stopped)
        with logging_restored(), pytest.raises(KeyboardInterrupt):
            run_federation(FakeGrid(2), _settings(run_dir))
    assert _finished(run_dir) is None
    with logging_restored():
        run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert _finished(run_dir) is not None
    assert "over 1 round " in _cards(run_dir)["model"]
