"""`fedmodel sweep-report` names the jobs a `--multirun` sweep left without a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_manifest import BASIC_SWEEPER
from fedmodel.research.sweep_report import write_report
from tests.unit.test_sweep_report import write_run

# What Hydra's multirun.yaml holds that the report reads (the file holds the
# whole config besides): the sweeper's params come before the command line's.
MANIFEST = {
    "hydra": {
        "mode": "MULTIRUN",
        "output_subdir": ".hydra",
        "sweeper": {
            "_target_": BASIC_SWEEPER,
            "max_batch_size": None,
            "params": {"seed": "1,2"},
        },
        "overrides": {
            "hydra": ["hydra.sweep.dir=sweep", "hydra.mode=MULTIRUN"],
            "task": ["model=tiny", "privacy.target_epsilon=1,8"],
        },
    }
}
OTHER_SWEEPER = {"_target_": "x"}
# Hydra's jobs 0-3, as its basic sweeper numbers them.
JOBS = [
    ["seed=1", "model=tiny", "privacy.target_epsilon=1"],
    ["seed=1", "model=tiny", "privacy.target_epsilon=8"],
    ["seed=2", "model=tiny", "privacy.target_epsilon=1"],
    ["seed=2", "model=tiny", "privacy.target_epsilon=8"],
]


@pytest.fixture
def stopped_sweep(tmp_path: Path) -> Path:
    """Jobs 0 and 1 finished, job 2 failed, job 3 never started."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(MANIFEST))
    for number, job in enumerate(JOBS[:3]):
        epsilon = float(job[-1].split("=")[1])
        write_run(sweep / str(number), job, 0.6, epsilon - 0.01)
        (sweep / str(number) / ".hydra").mkdir()
        (sweep / str(number) / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump(job)
        )
    summary = sweep / "2" / "summary.json"
    failed = {**json.loads(summary.read_text()), "status": "failed"}
    summary.write_text(json.dumps(failed))
    return sweep


def test_report_names_the_jobs_the_sweep_did_not_run(
    stopped_sweep: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="fedmodel.research.sweep_report"):
        paths = write_report(stopped_sweep, tmp_path / "out")
    markdown = paths["markdown"].read_text()
    failed = "- did not finish: seed=2 privacy.target_epsilon=1 (job 2: 2 holds no"
    missing = "- not run: seed=2 privacy.target_epsilon=8 (job 3: no job folder)"
    assert failed in markdown and missing in markdown
    assert missing[2:] in caplog.text
    assert "job 0" not in markdown and "job 1" not in markdown
    # Without multirun.yaml the report holds the runs found, as before.
    (stopped_sweep / "multirun.yaml").unlink()
    markdown = write_report(stopped_sweep, tmp_path / "out")["markdown"].read_text()
    assert "not run" not in markdown and "did not finish" not in markdown


def test_a_sweep_whose_every_job_failed_names_each_job(
    stopped_sweep: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: "holds no finished run folder", as for a folder with no sweep.
    for number in (0, 1):
        summary = stopped_sweep / str(number) / "summary.json"
        failed = {**json.loads(summary.read_text()), "status": "failed"}
        summary.write_text(json.dumps(failed))
    with caplog.at_level("WARNING"), pytest.raises(FedmodelError) as raised:
        write_report(stopped_sweep, tmp_path / "out")
    assert str(raised.value) == (
        f"none of the 4 jobs under {stopped_sweep} finished (each named above, "
        "with why): continue a stopped one with `fedmodel resume JOB_FOLDER`, or "
        "rerun the sweep, then report it"
    )
    for line in (
        "did not finish: seed=1 privacy.target_epsilon=1 (job 0: 0 holds no",
        "did not finish: seed=2 privacy.target_epsilon=1 (job 2: 2 holds no",
        "not run: seed=2 privacy.target_epsilon=8 (job 3: no job folder)",
    ):
        assert line in caplog.text
    assert not (tmp_path / "out").exists()


def test_a_sweep_in_a_folder_of_sweeps_is_named_by_its_folder(
    stopped_sweep: Path, tmp_path: Path
) -> None:
    outer = tmp_path / "sweeps"
    outer.mkdir()
    stopped_sweep.rename(outer / "dp")
    markdown = write_report(outer, tmp_path / "out")["markdown"].read_text()
    assert "- not run: seed=2 privacy.target_epsilon=8 (job 3 of dp: no job" in markdown
    assert "(job 2 of dp: dp/2 holds no finished run)" in markdown


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("{not yaml", "cannot list the jobs"),
        (
            yaml.safe_dump({"hydra": {**MANIFEST["hydra"], "sweeper": OTHER_SWEEPER}}),
            "its sweeper is x, not Hydra's basic one",
        ),
    ],
)
def test_a_manifest_that_lists_no_jobs_is_named_in_a_warning(
    stopped_sweep: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    manifest: str,
    reason: str,
) -> None:
    (stopped_sweep / "multirun.yaml").write_text(manifest)
    with caplog.at_level("WARNING", logger="fedmodel.research.sweep_manifest"):
        markdown = write_report(stopped_sweep, tmp_path / "out")["markdown"]
    assert "not run" not in markdown.read_text()
    assert reason in caplog.text


def test_a_sweep_continued_with_resume_finds_the_jobs_it_kept(
    stopped_sweep: Path, tmp_path: Path
) -> None:
    # `simulate --multirun ... resume=true` in the sweep's folder: its
    # multirun.yaml lists each job with resume=true, and a finished job left
    # as it was keeps the overrides of its start without it. Before, such a
    # job read "not run: ... (job 0: no job folder)".
    manifest = yaml.safe_load(yaml.safe_dump(MANIFEST))
    manifest["hydra"]["overrides"]["task"].append("resume=true")
    (stopped_sweep / "multirun.yaml").write_text(yaml.safe_dump(manifest))
    failed = stopped_sweep / "2" / ".hydra" / "overrides.yaml"
    failed.write_text(yaml.safe_dump([*JOBS[2], "resume=true"]))
    markdown = write_report(stopped_sweep, tmp_path / "out")["markdown"].read_text()
    assert "job 0" not in markdown and "job 1" not in markdown
    assert "(job 2: 2 holds no finished run)" in markdown
    assert "- not run: seed=2 privacy.target_epsilon=8 (job 3: no job" in markdown
