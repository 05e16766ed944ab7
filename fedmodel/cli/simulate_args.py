"""`fedmodel simulate`'s command line, checked before Hydra runs it.

Hydra's flags read as Hydra will read them, flags that exclude each other
refused in fedmodel's words, and every job of a --multirun sweep checked
before the first job runs.
"""

from __future__ import annotations

import argparse

from fedmodel.cli.hydra_errors import error_line
from fedmodel.cli.hydra_files import task_overrides
from fedmodel.config import settings_from_dict
from fedmodel.errors import FedmodelError

# Hydra's flags that each pick what the command does (at most one may be
# given), by the name Hydra's parser stores them under.
MODE_FLAGS = {
    "run": ("--run", "runs one job"),
    "multirun": ("--multirun", "runs a sweep"),
    "cfg": ("--cfg", "prints the composed config and runs nothing"),
    "info": ("--info", "prints Hydra's information"),
    "shell_completion": ("--shell-completion", "prints shell completion"),
}


def hydra_args(argv: list[str]) -> argparse.Namespace | None:
    """Hydra's flags and overrides in `argv`, read as Hydra will; None if it cannot."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        args, _ = parser.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    return args


def check_hydra_flags(args: argparse.Namespace) -> None:
    """Refuse Hydra flags that exclude each other, before Hydra raises on them."""
    given = [MODE_FLAGS[dest] for dest in MODE_FLAGS if getattr(args, dest)]
    if len(given) > 1:
        flags = " and ".join(flag for flag, _ in given)
        what = "; ".join(f"{flag} {does}" for flag, does in given)
        raise FedmodelError(
            f"{flags} cannot be given together: give one of them ({what})"
        )
    if args.resolve and args.cfg is None and not args.help:
        raise FedmodelError("--resolve works only with --cfg or --help; add one")


def check_sweep_jobs(overrides: list[str]) -> None:
    """Check the settings of every job of a --multirun sweep before the first.

    A bad value in the sweep's last job would otherwise stop it only after
    the jobs before had run, hours into a long sweep. Hydra's own keys are
    left to Hydra.
    """
    from hydra.errors import HydraException

    from fedmodel.config import compose_config
    from fedmodel.config.sweep_jobs import sweep_jobs, swept_values

    try:
        jobs = sweep_jobs(task_overrides(overrides))
    except HydraException:
        # Hydra names an override it cannot parse itself, before any job; and
        # only Hydra's sweeper lists a group's options for glob().
        return
    for number, job in enumerate(jobs, start=1):
        try:
            settings_from_dict({**compose_config(job), "run_dir": ""})
        except FedmodelError as exc:
            raise FedmodelError(
                f"sweep job {number} of {len(jobs)} ({swept_values(job, jobs)}): "
                f"{error_line(exc)}; no job has run"
            ) from None
