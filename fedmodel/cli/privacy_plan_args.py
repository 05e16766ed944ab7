"""`fedmodel privacy-plan`'s overrides, checked before any config is composed.

privacy-plan plans one value from its overrides alone: a --multirun is
refused with the commands that plan each job, and an override that names a
run's folder or continues a run is refused, not passed over.
"""

from __future__ import annotations

import shlex

from fedmodel.cli.hydra_files import RUN_DIR_KEY, SWEEP_DIR_KEY, override_key
from fedmodel.config.compose import RUN_FOLDER_KEY, override_parser
from fedmodel.config.repeated_keys import refuse_repeated_keys
from fedmodel.config.sweep_jobs import sweep_jobs
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_manifest import RESUME_KEY

# The commands a refused --multirun writes out, one per job; the rest counted.
SHOWN_JOBS = 4
# privacy-plan composes its overrides and nothing else; a run folder named by
# run_dir= was passed over without a word, and the plan shown was the defaults'.
PLAN_RUN_FOLDER_INSTEAD = (
    "privacy-plan runs in no folder, reads none and plans from its overrides "
    "alone; a run's settings are in DIR/resolved_config.yaml and each "
    "client's epsilon in DIR/summary.json"
)


def check_plan_overrides(
    overrides: list[str], *, multirun: bool, as_json: bool = False
) -> None:
    """Refuse a --multirun, the overrides that name a run's folder, a key twice.

    `as_json`: the command was given `--json`, which the commands a refused
    --multirun writes out keep.
    """
    if multirun:
        raise FedmodelError(_multirun_refusal(overrides, as_json=as_json))
    _refuse_a_run_folder(overrides)
    refuse_repeated_keys(overrides)


def _multirun_refusal(overrides: list[str], *, as_json: bool) -> str:
    """Why privacy-plan takes no --multirun, and the commands that plan each job.

    One command per job of the sweep (every combination of the swept values,
    in the order `simulate --multirun` runs them), the first `SHOWN_JOBS` of
    them written out.
    """
    from hydra.errors import HydraException

    line = "privacy-plan plans one value at a time and takes no --multirun"
    try:
        parsed = override_parser().parse_overrides(overrides)
        jobs = sweep_jobs(overrides)
    except HydraException:  # unparsable, or a glob only Hydra's loader expands
        return f"{line}: give each value in its own privacy-plan run"
    swept = {item.key_or_group for item in parsed if item.is_sweep_override()}
    if not swept:
        return f"{line}: leave it out"
    command = ["fedmodel", "privacy-plan", *(["--json"] if as_json else [])]
    shown = [shlex.join([*command, *job]) for job in jobs]
    more = len(jobs) - SHOWN_JOBS
    tail = f"; and {more} more, {len(jobs)} in all" if more > 0 else ""
    per = "value" if len(swept) == 1 else "combination"
    return (
        f"{line}: run it once per {per} "
        f"({'; '.join(shown[:SHOWN_JOBS])}{tail}); a sweep: "
        f"{shlex.join(['fedmodel', 'simulate', '--multirun', *overrides])}"
    )


def _refuse_a_run_folder(overrides: list[str]) -> None:
    """Refuse the overrides that name a run's folder (`run_dir`, Hydra's two).

    privacy-plan composes its overrides alone: a folder named there was passed
    over, and the plan shown was not that run's. So is `resume=true`, which
    continues the run in a folder: it was taken without a word.
    """
    for override in overrides:
        key = override_key(override)
        if key is None:
            continue
        if key.key in (RUN_FOLDER_KEY, RUN_DIR_KEY, SWEEP_DIR_KEY) or (
            key.key == RESUME_KEY and _resumes(override)
        ):
            raise FedmodelError(f"{override}: {PLAN_RUN_FOLDER_INSTEAD}")


def _resumes(override: str) -> bool:
    """Whether `override` (of the `resume` key) asks to continue a run."""
    value = override_parser().parse_overrides([override])[0].value()
    return value is True or str(value).lower() == "true"
