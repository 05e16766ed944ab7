"""One start at a time in a run folder (`run/folder_lock.py`).

On the loopback deployment, Ctrl-C ended `flwr run --stream` after round 1
while the run went on, and a resume typed on the same run-dir then ran beside
it: both servers sent rounds 3 and 4 to the two sites, which were charged for
each twice (epsilon 11.94 where one run stops, 12.80 after both), and
metrics.jsonl read rounds 1, 2, 3, 4, 3, 4. Here the second start comes in
round 2 of the first, on the real ServerApp over the in-process grid.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.app import Message

from fedmodel.cli.simulate import run_simulate
from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.federation.server_app import run_federation
from fedmodel.run import folder_lock
from fedmodel.run.folder_lock import run_folder_held
from fedmodel.run.layout import METRICS_FILE, RESOLVED_CONFIG, SUMMARY_FILE
from fedmodel.run.metrics import read_rounds
from tests.conftest import logging_restored
from tests.fake_grid import FakeGrid
from tests.unit.test_resume import RUN, _refused, _run_folder, _summary
from tests.unit.test_rounds import TINY_RUN

pytestmark = pytest.mark.usefixtures("no_stop_request")

IN_USE = "is in use by another start of this run, which is still going"


def _settings(run_dir: Path, *overrides: str) -> RunSettings:
    raw = compose_config([*TINY_RUN, "num_rounds=3", *overrides])
    return settings_from_dict({**raw, "run_dir": str(run_dir)})


def test_a_resume_while_the_run_goes_on_is_refused_before_it_sends_anything(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    second = FakeGrid(2)
    refusals: list[str] = []

    def resume_in_round_two(client: int, message: Message) -> None:
        if message.content["config"]["server-round"] == 2 and not refusals:
            with pytest.raises(FedmodelError) as refused:
                run_federation(second, _settings(run_dir, "resume=true"))
            refusals.append(str(refused.value))

    with logging_restored():
        summary = run_federation(
            FakeGrid(2, before_train=resume_in_round_two), _settings(run_dir)
        )
    assert refusals and refusals[0].startswith(f"the run folder {run_dir} {IN_USE}")
    assert "`flwr stop <run-id>`" in refusals[0]
    assert second.sent == []  # no ledger query, no train message
    # The run went on alone: each round once, and it finished.
    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2, 3]
    assert summary["status"] == "ok"
    assert "resume: true" not in (run_dir / RESOLVED_CONFIG).read_text()


def test_the_folder_is_free_once_its_start_ends_however_it_ends(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError), run_folder_held(run_dir):
        raise RuntimeError("a start that failed")
    with run_folder_held(run_dir):  # free again after the failure
        pass
    # Another process's start holds it until that process dies, by a kill too.
    with _held_by_another_process(run_dir):
        with pytest.raises(FedmodelError, match=IN_USE), run_folder_held(run_dir):
            pass
    with run_folder_held(run_dir):
        pass
    assert list(run_dir.iterdir()) == []  # no file of its own in the folder


def test_a_resume_typed_while_the_run_goes_on_is_refused_before_it_reads_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two real starts: `fedmodel resume` typed in round 2 of a 2-round run
    # found no summary, so nothing finished, then waited 55 s for Ray and the
    # folder, which it took once the run had finished: it exported the model
    # again and rewrote summary.json (wall_seconds 66 -> 8), exit 0. Here the
    # start that holds the folder has just written its summary.
    run = _run_folder(tmp_path / "run", RUN)
    _summary(run)
    summary = (run / SUMMARY_FILE).read_bytes()
    with _held_by_another_process(run):
        err = _refused([str(run)], capsys)
    assert err.startswith(f"fedmodel resume: error: the run folder {run} {IN_USE}")
    assert (run / SUMMARY_FILE).read_bytes() == summary


def test_a_new_start_in_the_folder_of_a_run_that_goes_on_is_told_it_is_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, it was told the folder "already holds a run (...): continue it
    # with resume=true", which a run still going refuses only after Ray starts.
    run = _run_folder(tmp_path / "run", RUN)
    (run / METRICS_FILE).write_text('{"round": 1}\n')
    with _held_by_another_process(run), pytest.raises(SystemExit) as refused:
        run_simulate([*RUN, f"hydra.run.dir={run}"])
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip()
    expected = f"fedmodel simulate: error: the run folder {run} {IN_USE}"
    assert err.startswith(expected) and len(err.splitlines()) == 1
    assert "resume=true" not in err


@contextlib.contextmanager
def _held_by_another_process(run_dir: Path) -> Iterator[None]:
    """`run_dir` held by a start in another process, killed as the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_run_folder_that_is_a_file_is_refused_by_the_runs_own_check(
    tmp_path: Path,
) -> None:
    # The lock makes no error of its own out of a folder it cannot open.
    in_the_way = tmp_path / "run"
    in_the_way.write_text("keep me")
    with logging_restored(), pytest.raises(FedmodelError, match="is a file"):
        run_federation(FakeGrid(2), _settings(in_the_way))
    assert in_the_way.read_text() == "keep me"


def test_a_folder_the_file_system_will_not_lock_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NFS may refuse a lock on a folder opened for reading (EBADF): the run
    # goes on, said once, rather than stopping on the system's error.
    def refused(fd: int, operation: int) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(folder_lock.fcntl, "flock", refused)
    with caplog.at_level(logging.WARNING), run_folder_held(tmp_path / "run"):
        pass
    assert [r.getMessage() for r in caplog.records] == [
        f"run folder {tmp_path / 'run'} cannot be locked ([Errno 9] Bad file "
        "descriptor): nothing keeps a second start of this run out of it"
    ]


_HOLD = """
import sys, time
from pathlib import Path
from fedmodel.run import folder_lock
from fedmodel.run.folder_lock import run_folder_held
with run_folder_held(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""
