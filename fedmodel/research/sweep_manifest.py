"""The jobs a `--multirun` sweep was asked for that left no finished run.

Hydra writes `multirun.yaml` into a sweep's folder before its first job: the
command line's overrides (`hydra.overrides.task`) and the sweeper's own
(`hydra.sweeper.params`), from which the jobs are listed as Hydra's basic
sweeper lists them. A job's folder is found by the overrides Hydra saves in
it (`.hydra/overrides.yaml`), whatever `hydra.sweep.subdir` names it. A sweep
stops at its first failed job and leaves no folder for the jobs after it, so
without the list those jobs would go unmentioned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from fedmodel.config.sweep_jobs import sweep_jobs, swept_values
from fedmodel.run.layout import HYDRA_DIR

log = logging.getLogger(__name__)

MANIFEST = "multirun.yaml"
OVERRIDES_FILE = "overrides.yaml"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# The key that continues a job's run: not part of what the job is.
RESUME_KEY = "resume"


def jobs_without_result(sweep_dir: Path, finished: set[Path]) -> list[str]:
    """One line for each job of each sweep under `sweep_dir` with no finished run.

    `finished` holds the finished run folders. A job with no folder never
    ran; one whose folder is not among `finished` failed or is still going.
    A folder without a multirun.yaml gives no lines.
    """
    lines: list[str] = []
    for manifest in sorted(sweep_dir.rglob(MANIFEST)):
        asked = _asked_jobs(manifest)
        if asked is None:
            continue
        jobs, output_subdir = asked
        folders = _job_folders(manifest.parent, output_subdir)
        where = (
            ""
            if manifest.parent == sweep_dir
            else f" of {manifest.parent.relative_to(sweep_dir)}"
        )
        for number, job in enumerate(jobs):
            label = swept_values(job, jobs) or " ".join(job)
            folder = folders.get(_job_key(job))
            if folder is None:
                lines.append(f"not run: {label} (job {number}{where}: no job folder)")
            elif folder not in finished:
                lines.append(
                    f"did not finish: {label} (job {number}{where}: "
                    f"{folder.relative_to(sweep_dir)} holds no finished run)"
                )
    return lines


def _asked_jobs(manifest: Path) -> tuple[list[list[str]], str] | None:
    """The jobs a multirun.yaml asks for and where its jobs keep their overrides.

    None, with a warning, where they cannot be told: a file that does not
    read, another sweeper than Hydra's basic one, no saved overrides.
    """
    from hydra.errors import HydraException

    try:
        hydra = _mapping(yaml.safe_load(manifest.read_text(encoding="utf-8")), "")
        hydra = _mapping(hydra.get("hydra"), "hydra")
        sweeper = _mapping(hydra.get("sweeper"), "hydra.sweeper")
        overrides = _mapping(hydra.get("overrides"), "hydra.overrides")
        task = overrides.get("task") or []
        output_subdir = hydra.get("output_subdir", HYDRA_DIR)
        if sweeper.get("_target_") != BASIC_SWEEPER:
            raise ValueError(
                f"its sweeper is {sweeper.get('_target_')}, not Hydra's basic one"
            )
        if not output_subdir:
            raise ValueError("hydra.output_subdir is null: no job saved its overrides")
        jobs = sweep_jobs([str(o) for o in task], sweeper.get("params"))
        return jobs, str(output_subdir)
    except (OSError, ValueError, yaml.YAMLError, HydraException) as exc:
        log.warning(
            "cannot list the jobs %s asks for (%s); the report names only the "
            "runs found",
            manifest,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        return None


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{key or 'the file'} is not a mapping")
    return value


def _job_folders(sweep: Path, output_subdir: str) -> dict[tuple[str, ...], Path]:
    """Each job folder under `sweep`, by its saved overrides (`_job_key`)."""
    folders = {}
    depth = len(Path(output_subdir).parts)  # the job folder is above it
    for saved in sorted(sweep.rglob(f"{output_subdir}/{OVERRIDES_FILE}")):
        try:
            overrides = yaml.safe_load(saved.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            log.warning("cannot read %s (%s); its job counts as not run", saved, exc)
            continue
        if isinstance(overrides, list):
            folders[_job_key([str(o) for o in overrides])] = saved.parents[depth]
    return folders


def _job_key(overrides: list[str]) -> tuple[str, ...]:
    """A job's overrides, sorted, without `resume=`: which job it is.

    A sweep continued in its folder with resume=true lists each job with it,
    and a finished job it left as it was keeps the overrides of its start.
    """
    return tuple(sorted(o for o in overrides if o.split("=")[0] != RESUME_KEY))
