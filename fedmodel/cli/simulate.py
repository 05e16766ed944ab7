"""`fedmodel simulate`: one federated run (or a --multirun sweep) through Hydra.

Hydra reads the overrides; its own config errors (an unknown key, an unknown
group option, flags that exclude each other) exit 2 with one line and a "did
you mean", like fedmodel's own checks. A run that fedmodel's checks reject
leaves no run folder it made behind, and an earlier run's folder as it was
(`refused_folder.py`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from fedmodel.cli.errors import (
    EXIT_OK,
    EXIT_USER_ERROR,
    SIMULATE_PROG,
    report_error,
)
from fedmodel.cli.hydra_errors import error_line, hydra_error_line
from fedmodel.cli.hydra_files import named_run_dir, named_sweep_dir
from fedmodel.cli.interrupted import signals_stop_the_server
from fedmodel.cli.refused_folder import (
    FoldersBefore,
    folders_before,
    hydra_files_kept_if_refused,
    remove_if_unused,
    sweep_files_kept_if_refused,
)
from fedmodel.cli.resume_finished import finished_sweep_job
from fedmodel.cli.simulate_args import check_hydra_flags, check_sweep_jobs, hydra_args
from fedmodel.cli.stopped_start import (
    StoppedBeforeStart,
    earlier_jobs_folder,
    signals_stop_the_job_start,
    signals_stop_the_start,
)
from fedmodel.config import CONF_DIR, RunSettings, settings_from_dict
from fedmodel.config.compose import (
    check_overrides,
    config_groups_text,
    refuse_run_folder_key,
)
from fedmodel.config.deployment import check_deployment_settings
from fedmodel.config.file_paths import with_absolute_paths
from fedmodel.config.modes import SIMULATION
from fedmodel.config.repeated_keys import refuse_repeated_keys
from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.run.console import VERBOSE_ENV, setup_logging
from fedmodel.run.layout import FLWR_HOME_DIR, LOG_FILE, RESOLVED_CONFIG

VERBOSE_FLAGS = ("-v", "--verbose")
# How `fedmodel simulate` is given its run folder.
RUN_FOLDER_INSTEAD = (
    "name it with hydra.run.dir=DIR (and resume=true to continue the run in DIR;"
    " --multirun puts each job in its own folder under hydra.sweep.dir)"
)
# conf/hydra/help/fedmodel.yaml lists the config groups through this resolver.
GROUPS_RESOLVER = "fedmodel_config_groups"
log = logging.getLogger("fedmodel")


def run_simulate(argv: list[str], *, prog: str = SIMULATE_PROG) -> int:
    """Run the Hydra app on `argv` (overrides and Hydra flags); return the exit code.

    `prog` names the command in its error lines (`fedmodel resume` runs this).
    Ctrl-C or SIGTERM before the simulation starts exits 130 or 143 with a line.
    """
    with signals_stop_the_start(prog):
        return _run_app(argv, prog=prog)


def _run_app(argv: list[str], *, prog: str) -> int:
    import hydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from fedmodel.run.folder_check import UnusableRunFolder

    if any(flag in argv for flag in VERBOSE_FLAGS):
        os.environ[VERBOSE_ENV] = "1"
        argv = [arg for arg in argv if arg not in VERBOSE_FLAGS]
    args = hydra_args(argv)
    try:
        if args is not None:  # else Hydra names what it cannot read
            check_hydra_flags(args)
            refuse_run_folder_key(args.overrides, instead=RUN_FOLDER_INSTEAD)
            refuse_repeated_keys(args.overrides)
            check_overrides(args.overrides)
            if args.multirun:
                check_sweep_jobs(args.overrides)
    except FedmodelError as exc:
        report_error(prog, error_line(exc))
        return EXIT_USER_ERROR
    OmegaConf.register_new_resolver(GROUPS_RESOLVER, config_groups_text, replace=True)
    # A rejected run removes only the folders this command made.
    named = None if args is None or args.multirun else named_run_dir(args.overrides)
    before = folders_before(named)
    app = hydra.main(
        config_path=str(CONF_DIR), config_name="config", version_base="1.3"
    )(lambda cfg: _simulate(cfg, prog=prog, before=before))
    full_error = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises; we print one line
    sys.argv = ["fedmodel", *argv]
    if args is not None and args.multirun:
        kept = sweep_files_kept_if_refused(named_sweep_dir(args.overrides))
    else:
        kept = hydra_files_kept_if_refused(named)
    try:
        with kept:
            app()
    except (HydraException, OmegaConfBaseException) as exc:
        if full_error:
            raise
        report_error(prog, hydra_error_line(exc))
        return EXIT_USER_ERROR
    except UnusableRunFolder as exc:  # RunFolderCheck, before Hydra's log file
        report_error(prog, exc.message)
        return EXIT_USER_ERROR
    finally:
        if not full_error:
            del os.environ["HYDRA_FULL_ERROR"]
    return EXIT_OK


def _simulate(cfg: Any, *, prog: str, before: FoldersBefore) -> float:
    """The Hydra task: run one simulation in Hydra's run folder.

    `before`: the folders a refused run keeps (`refused_folder.py`).
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # An earlier run's log or Flower's files: that run's folder, never removed.
    earlier_run = any((run_dir / name).exists() for name in (LOG_FILE, FLWR_HOME_DIR))
    setup_logging(run_dir)
    raw = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(raw, dict):  # pragma: no cover - config.yaml is a mapping
        raise TypeError("the composed config is not a mapping")
    # hydra.job.chdir=true runs this in the run folder: a relative data file
    # path is still the command's, from the folder it was typed in.
    config = with_absolute_paths(
        {str(k): v for k, v in raw.items()}, base=Path(HydraConfig.get().runtime.cwd)
    )
    try:
        with signals_stop_the_job_start():  # a sweep's later job too
            done = _checked_start(config, run_dir)
            if done is not None:
                return done
            from fedmodel.federation.simulation import simulate
        with signals_stop_the_server(prog, run_dir):
            summary = simulate(
                config, run_dir=run_dir, overrides=HydraConfig.get().overrides.task
            )
    except FedmodelError as exc:
        report_error(prog, str(exc))
        remove_if_unused(run_dir, earlier_run=earlier_run, before=before)
        raise SystemExit(EXIT_USER_ERROR) from None
    except StoppedBeforeStart as stop:  # nothing charged: as a refused start
        remove_if_unused(run_dir, earlier_run=earlier_run, before=before)
        stop.run_dir = run_dir if run_dir.is_dir() else None
        stop.sweep_dir = earlier_jobs_folder()
        raise
    _say_done(summary, run_dir)
    return float(summary["final_accuracy"])


def _checked_start(config: dict[str, Any], run_dir: Path) -> float | None:
    """Check the settings, run folder and records before the simulation stack loads.

    `simulate` checks again, cached. The folder first (a single run's resume
    must name one, and no start still going may hold it): a resume with a
    changed key that deals the records is named by that key, not by the
    records it moved. Then a deployment's settings (the server's
    `check_federation`), an http(s) tracking server, the task's files and the
    clients' records as read (`check_readable_records`), their privacy plans
    and ledgers (`check_simulated_clients`) and `_server_checks`; then it says
    what `task.max_length` cuts and the measured notes (`_say_plan_lines`).
    Returns a resumed sweep's finished job's accuracy, else None.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from fedmodel.run import folder_check
    from fedmodel.run.folder_lock import refuse_if_held
    from fedmodel.run.tracking import check_tracker_reachable

    settings = settings_from_dict({**config, "run_dir": str(run_dir)})
    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    new_folder = folder_check.NEW_SWEEP_FOLDER if sweep else folder_check.NEW_RUN_FOLDER
    if settings.resume and not sweep:
        _check_a_folder_named(run_dir)
    refuse_if_held(run_dir)  # not "continue it with resume=true" while it runs
    folder_check.check_run_folder(run_dir, settings, new_folder=new_folder)
    if settings.federation.name != SIMULATION:  # else the server's, after Ray
        check_deployment_settings(settings)
    check_tracker_reachable(settings)  # else asked once the run has finished
    if settings.resume and sweep:
        done = finished_sweep_job(run_dir, settings)
        if done is not None:
            return done
    # Each imported once the checks before it pass, so their refusals answer
    # without it: the records' check loads `datasets`, the privacy plan's torch
    # and Opacus, the model's transformers.
    from fedmodel.data.readable_records import check_readable_records

    check_readable_records(settings)
    from fedmodel.client.record_check import check_simulated_clients

    # The simulation checks again as it starts, and warns then: once.
    check_simulated_clients(settings, warn=False)
    _server_checks(settings)
    _say_plan_lines(settings, run_dir)
    return None


def _check_a_folder_named(run_dir: Path) -> None:
    """Refuse a single run's `resume=true` that names no run folder.

    Without `hydra.run.dir` the run goes to a new dated folder, which holds no
    run to continue: the resume would start a whole new run there. A named
    folder that holds none starts a new run with the server's warning, so
    that one command both starts a run and continues it.
    """
    from hydra.core.hydra_config import HydraConfig

    if named_run_dir(list(HydraConfig.get().overrides.hydra)) is None:
        raise FedmodelError(
            f"resume=true continues the run in the folder hydra.run.dir names, "
            f"and none is named: this start would be a new run in a new folder "
            f"({run_dir}). Continue a stopped run with `fedmodel resume RUN_DIR` "
            "(or hydra.run.dir=RUN_DIR resume=true), or leave out resume=true "
            "to start a new run"
        )


def _server_checks(settings: RunSettings) -> None:
    """What the server refuses before round 1 without reading weights, asked here.

    The model, finetune and distillation settings
    (`check_model_and_distillation`) and the device: in the server they come
    only after Ray has started. Imported here, after the checks above, so that
    what those refuse is said without loading transformers.
    """
    from fedmodel.federation.preflight import check_model_and_distillation
    from fedmodel.model.device import resolve_device

    check_model_and_distillation(settings)
    resolve_device(settings.device)  # the ServerApp, run in this process, uses it


def _say_plan_lines(settings: RunSettings, run_dir: Path) -> None:
    """Log `fedmodel privacy-plan`'s lines of the task: its cut texts, its notes.

    How many texts `task.max_length` cuts, then the measured notes that apply
    (`research/plan_measured.py`). Said once a run, before round 1: a resume
    of a run that started (its resolved config is there) deals the same
    records at the same `task.max_length` (`resumed_settings.py`), so its
    lines are the same.
    """
    if settings.resume and (run_dir / RESOLVED_CONFIG).is_file():
        return
    from fedmodel.data.cut_texts import cuts_line
    from fedmodel.data.tasks import load_task
    from fedmodel.research.plan_cuts import count_cuts
    from fedmodel.research.plan_measured import run_notes

    # The task the checks above read (cached), counted as the plan counts it.
    cuts = count_cuts(settings, load_task(settings.task, seed=settings.seed))
    log.info("%s", cuts_line(settings.task.max_length, cuts))
    for note in run_notes(settings):
        log.info("%s", note.line)


def _say_done(summary: dict[str, Any], run_dir: Path) -> None:
    """The run's last line: its accuracy, its privacy statement, its folder."""
    # The run's statement: every charge, the server's ledger's under central DP.
    statement = summary["privacy_guarantee"]
    epsilon = statement["epsilon"]
    if statement.get("unstated"):
        spent = f", epsilon not stated ({statement['unstated']})"
    elif epsilon is not None:
        spent = f", max client epsilon {decimals_up(epsilon, 3)}"
    else:
        spent = ""
    log.info(
        "done: final test accuracy %.4f, macro-F1 %.4f%s, %.0f s; outputs in %s",
        summary["final_accuracy"],
        summary["final_macro_f1"],
        spent,
        summary["wall_seconds"],
        run_dir,
    )
