"""`fedmodel simulate` says what `task.max_length` cuts, once, before round 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedmodel.cli.main import run_command
from fedmodel.cli.simulate import run_simulate
from fedmodel.run.layout import LOG_FILE
from tests.conftest import FEW_LATENCY_CALLS, ONE_ACTOR

CUT_LINE = (
    "task.max_length 8 cuts 5 of 48 training texts (11%) and 1 of 2 test texts "
    "(50%): a cut text keeps its first 8 tokens ([CLS] and [SEP] among them) and "
    "loses the rest; to keep more, raise task.max_length or shorten those texts"
)


def _notes(path: Path, words: list[int]) -> None:
    """A site's notes of `words[i]` words each ("note" is one token: k + 2 tokens)."""
    rows = [f"{'note ' * k},{'ab'[i % 2]}" for i, k in enumerate(words)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")


@pytest.mark.slow  # a real Flower simulation of one round
def test_a_files_simulation_says_what_task_max_length_cuts_once(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only `fedmodel privacy-plan` said it: a user who ran the simulation
    # without planning first never learned that texts lost their ends.
    _notes(tmp_path / "site0.csv", [6] * 20 + [7] * 4)  # 8 and 9 tokens
    _notes(tmp_path / "site1.csv", [1] * 23 + [300])
    _notes(tmp_path / "test.csv", [7, 3])
    run = tmp_path / "run"
    argv = [
        "model=tiny",
        "task=files",
        f"task.train_files=[{tmp_path}/site0.csv,{tmp_path}/site1.csv]",
        f"task.test_file={tmp_path}/test.csv",
        "task.max_length=8",
        "privacy=off",  # so that a resume may add a round
        "num_rounds=1",
        "distill=off",
        ONE_ACTOR,
        *FEW_LATENCY_CALLS,
        f"hydra.run.dir={run}",
    ]
    assert run_simulate(argv) == 0
    said = [
        line.split(" fedmodel ", 1)[-1] for line in capsys.readouterr().err.splitlines()
    ]
    assert said.count(CUT_LINE) == 1, said
    logged = (run / LOG_FILE).read_text(encoding="utf-8").splitlines()
    assert [CUT_LINE in line for line in logged].count(True) == 1
    first_round = next(i for i, line in enumerate(logged) if "round 1:" in line)
    assert any(CUT_LINE in line for line in logged[:first_round])
    # A resume deals the same records at the same limit: not said again.
    from fedmodel.federation import simulation

    class Started(Exception):
        pass

    def started(*_: Any, **__: Any) -> None:
        raise Started

    monkeypatch.setattr(simulation, "simulate", started)
    with pytest.raises(Started):
        run_command(["resume", str(run), "num_rounds=2"])
    assert "task.max_length 8 cuts" not in capsys.readouterr().err
