"""Privacy-research commands: `fedmodel privacy-plan`, `sweep-report`, `audit`.

The arguments are declared here and parsed before the research code (and with
it torch, Opacus, pandas) is imported.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmodel.cli.errors import EXIT_FINDING, EXIT_OK
from fedmodel.cli.paths import user_path
from fedmodel.cli.privacy_plan_args import check_plan_overrides
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.research import audit_defaults

if TYPE_CHECKING:
    from fedmodel.config import RunSettings
    from fedmodel.data.cut_texts import SplitCut
    from fedmodel.research.calibrated_settings import CalibratedSetting
    from fedmodel.research.plan_files import PlanFiles
    from fedmodel.research.plan_measured import MeasuredNote
    from fedmodel.research.privacy_plan import ClientPlan

log = logging.getLogger("fedmodel")

PLAN_WIDTH = 150


def add_privacy_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel privacy-plan [--json] [OVERRIDES...]`."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the settings and plans as JSON instead: "
        '{"training_settings": {...}, "budget_note": ..., "labels": {...}, '
        '"max_length_cuts": {...}, "clients": [...], "measured_notes": [...]} '
        "(budget_note: the line shown under the settings table, or null; "
        'labels: {"count": N, "names": [...]}, the task\'s classes as the run '
        'will use them; max_length_cuts: {"max_length": N, "splits": '
        '[{"split": ..., "cut": ..., "texts": ...}]}, how many texts of each '
        "split are longer than task.max_length tokens; measured_notes: "
        '[{"about": ..., "line": ...}], the lines under the tables, what was '
        "measured of files runs like this one at a strict budget)",
    )
    # Taken only to be refused by name, not as argparse's "unrecognized".
    parser.add_argument("-m", "--multirun", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, as for `fedmodel simulate`"
    )


def run_privacy_plan(args: argparse.Namespace) -> int:
    """Print each client's plan; exit 1 if any client is flagged."""
    check_plan_overrides(args.overrides, multirun=args.multirun, as_json=args.json)
    from fedmodel.run.console import setup_logging

    # fedmodel's lines on stderr and the libraries' progress bars off, before
    # tqdm is imported (it reads TQDM_DISABLE once, on import).
    setup_logging()
    from rich.console import Console

    from fedmodel.config import compose_config, settings_from_dict
    from fedmodel.config.budget_rule import unmeasured_budget
    from fedmodel.config.unread_keys import unread_key_warnings
    from fedmodel.research.calibrated_settings import training_settings

    raw = compose_config(args.overrides)
    settings = settings_from_dict(raw)
    for line in unread_key_warnings(settings, overrides=args.overrides):
        log.warning("%s", line)
    # Each imported once the checks before it pass, so their refusals answer
    # without it: the plan's files load `datasets`, its code torch,
    # transformers and Opacus.
    from fedmodel.research.plan_files import read_plan_files

    files = read_plan_files(settings)
    from fedmodel.model.device import resolve_device
    from fedmodel.research.plan_cuts import count_cuts, cuts_json
    from fedmodel.research.plan_measured import plan_notes
    from fedmodel.research.plan_tables import labels_json
    from fedmodel.research.privacy_plan import plan_run

    # The run stops where its device is missing (`resolve_device`): the plan too.
    resolve_device(settings.device)
    shown = training_settings(settings)
    note = unmeasured_budget(settings)
    plans = plan_run(settings, files)
    cuts = count_cuts(settings, files.records)
    notes = plan_notes(settings, plans, label_names=files.records.label_names)
    if args.json:
        # The same as the tables: the settings first, then each client's plan.
        report = {
            "training_settings": {key: asdict(s) for key, s in shown.items()},
            "budget_note": note,
            "labels": labels_json(files.records.label_names),
            "max_length_cuts": cuts_json(settings.task.max_length, cuts),
            "clients": [asdict(plan) for plan in plans],
            "measured_notes": [asdict(measured) for measured in notes],
        }
        print(json.dumps(report, indent=2))
    else:
        _print_tables(
            settings, plans, shown=shown, note=note, files=files, cuts=cuts, notes=notes
        )
    flagged = [plan.label for plan in plans if plan.problem]
    if flagged:
        Console(stderr=True).print(
            f"[red]{len(flagged)} {plural(len(flagged), 'client')} flagged: "
            f"{', '.join(flagged)}[/red]"
        )
    return EXIT_FINDING if flagged else EXIT_OK


def _print_tables(
    settings: RunSettings,
    plans: list[ClientPlan],
    *,
    shown: dict[str, CalibratedSetting],
    note: str | None,
    files: PlanFiles,
    cuts: list[SplitCut],
    notes: list[MeasuredNote],
) -> None:
    """Print the plan: the settings, labels, cut texts, plans and measured notes."""
    from rich.console import Console

    from fedmodel.data.cut_texts import cuts_line
    from fedmodel.research.calibrated_settings import settings_table
    from fedmodel.research.plan_tables import labels_line, plan_tables

    # Wide tables stay whole when the output is a pipe or a narrow terminal.
    console = Console(width=max(Console().width, PLAN_WIDTH))
    console.print(settings_table(shown))
    if note is not None:  # under the settings it concerns
        console.print(note, style="yellow", highlight=False)
    # A label is the user's text: no rich markup, no highlighting, and one
    # line in a pipe, as typed (rich would break it inside a label).
    line = labels_line(files.records.label_names)
    console.print(line, markup=False, highlight=False, soft_wrap=True)
    # Not markup either: "[CLS]" would be read as a style.
    cut = cuts_line(settings.task.max_length, cuts)
    console.print(cut, markup=False, highlight=False, soft_wrap=True)
    for table in plan_tables(settings, plans):
        console.print(table)
    for measured in notes:  # a label it quotes is the user's text, not markup
        console.print(measured.line, markup=False, highlight=False, soft_wrap=True)


def add_sweep_report_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel sweep-report SWEEP_DIR [--out DIR]`."""
    parser.add_argument("sweep_dir", type=user_path, help="a --multirun sweep folder")
    parser.add_argument(
        "--out", type=user_path, default=None, help="output folder (default: SWEEP_DIR)"
    )


def run_sweep_report(args: argparse.Namespace) -> int:
    """Write the sweep's CSV, table and plot; print the table and the paths."""
    from fedmodel.run.console import setup_logging

    # Its warnings (a run skipped, a job that did not run) as fedmodel's lines,
    # not in the format of the root handler Opacus sets up on import.
    setup_logging()
    from fedmodel.research.sweep_report import write_report

    paths = write_report(args.sweep_dir, args.out or args.sweep_dir)
    print(paths["markdown"].read_text(encoding="utf-8"))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return EXIT_OK


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel audit RUN_DIR [--client N] [--confidence C] ...`."""
    parser.add_argument(
        "run_dir", type=user_path, help="a `fedmodel simulate` run folder"
    )
    parser.add_argument(
        "--client",
        type=int,
        default=None,
        help="client to audit (default: audit.client)",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=audit_defaults.CONFIDENCE,
        help="confidence of the epsilon lower bound, in (0, 1) "
        f"(default: {audit_defaults.CONFIDENCE})",
    )
    parser.add_argument(
        "--max-records",
        type=int,
        default=audit_defaults.MAX_RECORDS,
        help=f"members and non-members, each, at least {audit_defaults.MIN_RECORDS} "
        f"(default: {audit_defaults.MAX_RECORDS})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=audit_defaults.SEED,
        help=f"threshold/eval split seed (default: {audit_defaults.SEED})",
    )


def run_audit(args: argparse.Namespace) -> int:
    """Audit the run, write audit.json; exit 1 when a bound exceeds the claim."""
    if not 0.0 < args.confidence < 1.0:
        raise FedmodelError(f"--confidence must be in (0, 1), got {args.confidence}")
    if args.max_records < audit_defaults.MIN_RECORDS:
        # The bound picks its threshold on one half of each set and is computed
        # on the other, so each half needs a record.
        raise FedmodelError(
            f"--max-records must be at least {audit_defaults.MIN_RECORDS}, got "
            f"{args.max_records}; leave it out for the default "
            f"({audit_defaults.MAX_RECORDS})"
        )
    from fedmodel.research.finished_run import load_run
    from fedmodel.run.console import setup_logging
    from fedmodel.run.folder_check import check_writable_folder

    # The folder is read before torch and the data code are imported
    # (seconds), so a wrong folder is answered at once.
    run = load_run(args.run_dir)
    # audit.json goes into the run folder: refused now, not after the audit ran.
    check_writable_folder(
        args.run_dir,
        key="RUN_DIR",
        what="the run folder, where audit.json is written,",
        fix="fix its permissions, or audit a copy of the run folder you can write",
    )
    clients = run[0].num_clients
    if args.client is not None and not 0 <= args.client < clients:
        raise FedmodelError(
            f"--client {args.client} is not a client of {args.run_dir}: it ran "
            f"{clients} {plural(clients, 'client')}, numbered 0 to {clients - 1}"
        )
    client = run[0].audit.client if args.client is None else args.client
    _refuse_a_client_that_never_trained(run[1], args.run_dir, client=client)
    # As privacy-plan: fedmodel's lines on stderr and the libraries' progress
    # bars off (rebuilding a files run's clients ran one), before tqdm loads.
    setup_logging()
    from fedmodel.research.audit import audit_run, render_audit
    from fedmodel.run.layout import AUDIT_FILE
    from fedmodel.run.metrics import write_json

    report = audit_run(
        args.run_dir,
        client=args.client,
        confidence=args.confidence,
        max_records=args.max_records,
        seed=args.seed,
        run=run,
    )
    write_json(
        args.run_dir / AUDIT_FILE, {**asdict(report), "consistent": report.consistent}
    )
    print(render_audit(report))
    print(f"written: {args.run_dir / AUDIT_FILE}")
    return EXIT_OK if report.consistent else EXIT_FINDING


def _refuse_a_client_that_never_trained(
    summary: dict[str, Any], run_dir: Path, *, client: int
) -> None:
    """Refuse to audit a client the run's summary holds no figures of.

    It was never sampled, or none of its updates came back: none of its
    records is a member of the model. Before, its audit attacked them as
    members and said "claimed: no DP (privacy=off)" of a DP run. A summary
    without client rows names no client that trained, and is not judged.
    """
    rows = summary.get("clients") or []
    trained = [row.get("client_id") for row in rows if isinstance(row, dict)]
    if not trained or client in trained:
        return
    choice = ", ".join(map(str, trained))
    raise FedmodelError(
        f"client {client} of {run_dir} never trained: its summary.json holds no "
        "figures of it (it was never sampled, or none of its updates came back), "
        "so none of its records is a member of the model; audit a client that "
        f"trained (--client: {choice})"
    )
