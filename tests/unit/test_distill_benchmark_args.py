"""The distill benchmarks name a folder that holds no finished run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "distill.py"


def _refusal(script: Path, *argv: str, cwd: Path) -> str:
    """The last line `script` prints as it refuses `argv` (exit 1, no traceback)."""
    done = subprocess.run(
        [sys.executable, str(script), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("option", ["--run-dir", "--teacher-run"])
def test_a_folder_without_a_finished_run_is_named_without_a_traceback(
    tmp_path: Path, option: str
) -> None:
    # Before: a FileNotFoundError traceback for summary.json (an interrupted
    # run, a run's model/ folder), or from transformers for --teacher-run.
    interrupted = tmp_path / "run"
    interrupted.mkdir()
    (interrupted / "resolved_config.yaml").write_text("seed: 1\n", encoding="utf-8")
    refused = _refusal(SCRIPT, option, str(interrupted), "--quality-only", cwd=tmp_path)
    assert refused == (
        f"{option} {interrupted}: no summary.json there; give the folder of a "
        "finished `fedmodel simulate` run (the one holding model/ and summary.json)"
    )


@pytest.mark.parametrize("out", ["teacher", "other"])
def test_an_out_folder_holding_a_run_is_refused_and_left_as_it_was(
    tmp_path: Path, out: str
) -> None:
    # Before: --out the teacher's own run distilled into it and replaced its
    # summary.json (privacy guarantee, clients, rounds) with the models alone.
    runs = {}
    for name in ("teacher", "other"):
        run = tmp_path / name
        (run / "model").mkdir(parents=True)
        (run / "model" / "config.json").write_text("{}", encoding="utf-8")
        (run / "resolved_config.yaml").write_text("seed: 1\n", encoding="utf-8")
        (run / "summary.json").write_text('{"privacy_guarantee": {}}\n')
        runs[name] = run
    argv = ["--teacher-run", str(runs["teacher"]), "--out", str(runs[out])]
    refused = _refusal(SCRIPT, *argv, "--quality-only", cwd=tmp_path)
    assert refused.startswith(
        f"--out {runs[out]}: it holds a run already (summary.json); distilling "
        "there would replace its summary.json (the run's privacy figures"
    )
    for run in runs.values():
        assert (run / "summary.json").read_text() == '{"privacy_guarantee": {}}\n'
        assert (run / "resolved_config.yaml").read_text() == "seed: 1\n"


@pytest.mark.parametrize("script", ["distill_epoch.py", "distill_bf16.py"])
def test_their_teacher_run_is_checked_as_distill_py_checks_it(
    tmp_path: Path, script: str
) -> None:
    # Before: a FileNotFoundError or KeyError traceback after about 6 s.
    refused = _refusal(
        BENCHMARKS / script, "--teacher-run", str(tmp_path), cwd=tmp_path
    )
    assert refused.startswith(
        f"--teacher-run {tmp_path}: no resolved_config.yaml there; give the folder"
    )
