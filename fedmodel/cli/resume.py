"""`fedmodel resume RUN_DIR`: continue a stopped `fedmodel simulate` run.

Hydra keeps each launch's overrides in RUN_DIR/.hydra/overrides.yaml (a
--multirun job's folder keeps the job's own values), and those of its own
settings (`hydra.job.chdir=true`, say) in .hydra/hydra.yaml. The command runs
`fedmodel simulate <those> resume=true hydra.run.dir=RUN_DIR <extra>` through
the same Hydra app, so the same checks decide whether the resume, and any
extra override, is allowed.

It runs from the folder the run was last started in (`started_in`), where
relative paths among the overrides were typed. They name the same files
from wherever `fedmodel resume` is called; an extra override's relative
path is read from there too.

A resume the checks refuse leaves the run's .hydra files as they were, as
any refused `fedmodel simulate` start into a run's folder does
(`refused_folder.py`): its overrides are not replayed by the next resume.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from pathlib import Path

from fedmodel.cli.errors import RESUME_PROG
from fedmodel.cli.hydra_files import (
    RUN_DIR_KEY,
    check_nameable,
    continue_argv,
    named_run_dir,
    of_the_launch,
    run_dir_override,
)
from fedmodel.cli.paths import user_path
from fedmodel.cli.resume_finished import check_rounds_left
from fedmodel.cli.stopped_start import signals_stop_the_start
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_manifest import MANIFEST
from fedmodel.run.console import setup_logging
from fedmodel.run.folder_lock import refuse_if_held
from fedmodel.run.layout import HYDRA_DIR, RESOLVED_CONFIG
from fedmodel.run.run_files import parsed_file
from fedmodel.run.stored_config import HYDRA_RECORD, hydra_record, started_in

log = logging.getLogger(__name__)

OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"
# A run folder with a resolved config but no overrides file.
_NO_OVERRIDES_KEPT = (
    ", and one started with hydra.output_subdir=null, which keeps no overrides, "
    "with `fedmodel simulate OVERRIDES resume=true {}`"
)
DESCRIPTION = (
    "Continue a `fedmodel simulate` run that was interrupted, crashed or "
    "killed, from its last checkpoint: the same as `fedmodel simulate "
    "<its overrides> resume=true hydra.run.dir=RUN_DIR`, with the overrides "
    f"read from RUN_DIR/{OVERRIDES_FILE} (Hydra's own from RUN_DIR/{HYDRA_RECORD})."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel resume RUN_DIR [-v] [OVERRIDES...]`."""
    parser.add_argument(
        "run_dir",
        type=user_path,
        metavar="RUN_DIR",
        help="the run's folder (a --multirun sweep: one job's folder)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],  # else argparse lists it as required when RUN_DIR is missing
        help="extra Hydra overrides, appended to the run's; the resume checks "
        "refuse those that would change its records or privacy plan",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the libraries' log lines too, as `fedmodel simulate -v`",
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulation on the run folder's overrides; return the exit code."""
    # Imported when the command runs: simulate brings Hydra, and main imports
    # this module for every command's --help.
    from fedmodel.cli.simulate import run_simulate
    from fedmodel.config.repeated_keys import refuse_repeated_keys

    setup_logging()  # for the lines said before the run starts
    run_dir = Path(os.path.abspath(args.run_dir))
    with signals_stop_the_start(RESUME_PROG, run_dir):
        # A typo is named first: before, a finished run's refusal came first
        # (`check_rounds_left`), after writing what its folder lacked.
        refuse_repeated_keys(args.overrides)
        argv = resume_argv(run_dir, args.overrides)
        # A start still going in it may be finishing it: its summary waits.
        refuse_if_held(run_dir)
        with contextlib.chdir(_runs_from(run_dir)):  # a default tracking.uri's folder
            check_rounds_left(run_dir, argv)
            return run_simulate(
                [*argv, *(["-v"] if args.verbose else [])], prog=RESUME_PROG
            )


def resume_argv(run_dir: Path, extra: list[str]) -> list[str]:
    """`fedmodel simulate`'s arguments that continue the run in `run_dir`."""
    if not run_dir.is_dir():
        problem = "is a file" if run_dir.exists() else "does not exist"
        raise FedmodelError(
            f"{run_dir} {problem}: name the folder of the run to continue (its "
            "hydra.run.dir; by default outputs/<date>/<time>-<task>)"
        )
    check_nameable(run_dir)
    _check_same_folder(run_dir, extra)
    if (run_dir / MANIFEST).is_file():
        jobs = sorted(p.parent.parent for p in run_dir.glob(f"*/{OVERRIDES_FILE}"))
        example = f", e.g. {jobs[0]}" if jobs else ""
        raise FedmodelError(
            f"{run_dir} is a --multirun sweep's folder ({MANIFEST}), one run "
            f"per job: name the folder of the job to continue{example}"
        )
    for name in (RESOLVED_CONFIG, OVERRIDES_FILE):
        if not (run_dir / name).is_file():
            hint = _NO_OVERRIDES_KEPT if name == OVERRIDES_FILE else ""
            raise FedmodelError(
                f"{run_dir} is not a run folder `fedmodel simulate` began a run "
                f"in (no {name}): name the folder of the run to continue; a run "
                "stopped before round 1 is started again with `fedmodel simulate`"
                + hint.format(run_dir_override(run_dir))
            )
    instead = (
        "continue the run with `fedmodel simulate OVERRIDES resume=true "
        f"{run_dir_override(run_dir)}`"
    )
    stored = parsed_file(run_dir / OVERRIDES_FILE, fix=f"mend it, or {instead}")
    if not isinstance(stored, list):
        raise FedmodelError(
            f"{run_dir / OVERRIDES_FILE} holds no list of overrides: {instead}"
        )
    overrides = [*(str(o) for o in stored), *hydras_own(run_dir)]
    return continue_argv(overrides, run_dir, extra=extra)


def _runs_from(run_dir: Path) -> Path:
    """The folder the resume runs in: the run's last start's, where it still is."""
    folder = started_in(run_dir)
    return folder if folder and folder.is_dir() else Path.cwd()


def _check_same_folder(run_dir: Path, extra: list[str]) -> None:
    """Refuse an extra `hydra.run.dir=` that names a folder other than `run_dir`.

    Hydra takes the later of two values, so the run would not be continued:
    a new run would start in the other folder, on the same records, with new
    ledgers. A relative folder is read from where the resume runs, as Hydra
    reads it.
    """
    named = named_run_dir(extra)
    if named is None or Path(os.path.normpath(_runs_from(run_dir) / named)) == run_dir:
        return
    raise FedmodelError(
        f"{RUN_DIR_KEY}={named}: {RESUME_PROG} continues the run in {run_dir}, "
        f"and this would start a new run in {named} instead; leave {RUN_DIR_KEY} "
        "out to continue the run, or start a new run there with `fedmodel "
        f"simulate OVERRIDES {RUN_DIR_KEY}=...`"
    )


def hydras_own(run_dir: Path) -> list[str]:
    """The start's overrides of Hydra's own settings, but how it was launched.

    Hydra keeps them in .hydra/hydra.yaml, not overrides.yaml; a sweep job's
    mode and sweep folder (`of_the_launch`) are not replayed: the resume runs
    the job alone in its folder. Nothing where the file or the list is missing;
    a file that cannot be read is said, as the resume then runs without them.
    """
    record = hydra_record(run_dir)
    if not record and (run_dir / HYDRA_RECORD).is_file():
        log.warning(
            "%s cannot be read (it holds no YAML mapping `hydra:`): the resume "
            "replays none of the start's own Hydra settings (such as "
            "hydra.job.chdir=true) and reads relative paths from %s; give any "
            "the start had again after RUN_DIR",
            run_dir / HYDRA_RECORD,
            Path.cwd(),
        )
    try:
        own = record["overrides"]["hydra"]
    except (KeyError, TypeError):
        return []
    if not isinstance(own, list):
        return []
    return [o for o in map(str, own) if not of_the_launch(o)]
