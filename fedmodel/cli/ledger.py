"""`fedmodel ledger show|reset --state-dir DIR`: a site's privacy ledger.

The arguments are declared here; the ledger code (and with it Opacus's
accountants) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.cli.errors import EXIT_OK
from fedmodel.cli.paths import user_path
from fedmodel.config.wording import decimals_up, plural, three_digits_up
from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    from fedmodel.privacy.ledger_reset import LedgerStatus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel ledger show|reset --state-dir DIR`: a site's privacy budget."""
    # argparse names a missing subcommand by its metavar, else by its dest.
    sub = parser.add_subparsers(dest="what", required=True, metavar="{show,reset}")
    show = sub.add_parser("show", help="print what the site has spent")
    show.add_argument(
        "--state-dir", type=user_path, required=True, help="the site's --state-dir"
    )
    reset = sub.add_parser(
        "reset", help="archive the ledger so the next run starts a new budget"
    )
    reset.add_argument(
        "--state-dir", type=user_path, required=True, help="the site's --state-dir"
    )
    reset.add_argument(
        "--yes", action="store_true", help="confirm: forget the spent epsilon"
    )


def run(args: argparse.Namespace) -> int:
    """Print the site's spend, or archive its ledger after --yes."""
    # Imported here: the accountants load Opacus.
    from fedmodel.privacy.ledger_record import LEDGER_FILE, LedgerRefusal
    from fedmodel.privacy.ledger_reset import archive_ledger, ledger_status

    _refuse_a_run_folder(args.state_dir)
    _refuse_a_folder_without_ledgers(args.state_dir)
    if args.what == "show":
        try:
            print(_shown(args.state_dir))
        except LedgerRefusal as exc:  # a folder `ledger reset` refuses: a new run
            if _simulated_run(args.state_dir) is None:
                raise
            raise exc.in_a_run() from exc
        return EXIT_OK
    _refuse_a_simulated_client(args.state_dir)
    if not args.yes:
        status = ledger_status(args.state_dir)
        raise FedmodelError(
            f"{status.path} records epsilon {decimals_up(status.epsilon, 4)} already "
            f"spent by client {status.client_id}; a reset lets the site spend a new "
            "budget, which is only sound on data that the spent budget did not "
            "cover. Add --yes to archive it"
        )
    archived_status, archived = archive_ledger(args.state_dir)
    spent = (
        "unusable: what it spent is unknown"
        if archived_status is None
        else f"epsilon {decimals_up(archived_status.epsilon, 4)}, "
        f"{archived_status.rounds} {plural(archived_status.rounds, 'round')}"
    )
    print(
        f"archived {args.state_dir / LEDGER_FILE} ({spent}) as {archived}; the "
        "next round starts a new budget"
    )
    return EXIT_OK


def _shown(state_dir: Path) -> str:
    """What `ledger show` prints: a site's spend, a reset, or a central run's."""
    from fedmodel.privacy.ledger_reset import (
        central_ledger_status,
        ledger_status,
        reset_and_not_charged,
    )

    if (central := central_ledger_status(state_dir)) is not None:
        return (
            f"{central.path}: the server's client-level ledger (privacy=central), "
            + _spent(
                central,
                limit=f"the run's target was {central.target_epsilon:g}",
                which_round="a round",
            )
        )
    # A reset with no round since is the site's state, not an error.
    if (reset := reset_and_not_charged(state_dir)) is not None:
        return reset
    status = ledger_status(state_dir)
    spent = _spent(
        status,
        limit=(
            f"its last run allowed {status.target_epsilon:g} (the server's "
            "target, or the site's --max-epsilon where lower)"
        ),
        which_round="a round there",
    )
    # From the digests in `state_dir`: no data file is read. Imported here, as
    # `ledger_status` has loaded the accountant: a reset folder needs none.
    from fedmodel.privacy.reset_overlap import charged_before_reset

    again = charged_before_reset(state_dir, fingerprint=status.data_fingerprint)
    return f"{status.path}: client {status.client_id}, {spent}{again or ''}"


def _spent(status: LedgerStatus, *, limit: str, which_round: str) -> str:
    """The epsilon spent, the `limit` it ran under, and a round that met it.

    `which_round` ("a round", "a round there") words that round, where one did.
    """
    spent = (
        f"epsilon {decimals_up(status.epsilon, 4)}{status.stated_by} spent at "
        f"delta {three_digits_up(status.delta)} in "
        f"{status.rounds} {plural(status.rounds, 'round')}; {limit}"
    )
    if status.budget_exhausted:
        spent += f", and {which_round} found the budget exhausted"
    return spent


def _refuse_a_run_folder(state_dir: Path) -> None:
    """Name the clients' folders when given a simulation's run folder.

    A simulated client keeps its ledger in RUN/clients/client-<i>, its own
    state directory; the run folder holds none of its own.
    """
    from fedmodel.privacy.ledger_record import LEDGER_FILE
    from fedmodel.run.layout import CLIENTS_DIR

    held = sorted(state_dir.glob(f"{CLIENTS_DIR}/*/{LEDGER_FILE}"))
    if not held or (state_dir / LEDGER_FILE).exists():
        return
    names = ", ".join(path.parent.name for path in held[:4])
    raise FedmodelError(
        f"--state-dir {state_dir} is a simulation's run folder: each simulated "
        f"client keeps its ledger in a state directory of its own, "
        f"{state_dir / CLIENTS_DIR}/client-<i> ({names}"
        f"{', ...' if len(held) > 4 else ''}); give one of those as --state-dir "
        "to show its ledger (a simulated client's ledger is not reset)"
    )


def _refuse_a_folder_without_ledgers(state_dir: Path) -> None:
    """Say why a run's folder holds no ledger: privacy=off or central, or a server.

    Before, the error read as if a site's first round had not come yet, also
    for a deployment's run folder on the server after its rounds had run.
    """
    from fedmodel.config.modes import DEPLOYMENT
    from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE, LEDGER_FILE
    from fedmodel.run.layout import RESOLVED_CONFIG, SUMMARY_FILE
    from fedmodel.run.resumed_settings import value_at
    from fedmodel.run.stored_config import stored_config

    if any((state_dir / name).exists() for name in (LEDGER_FILE, CENTRAL_LEDGER_FILE)):
        return
    in_a_run = (state_dir / RESOLVED_CONFIG).is_file()
    run_dir = state_dir if in_a_run else _simulated_run(state_dir)
    config = (stored_config(run_dir) if run_dir else None) or {}
    mode = value_at(config, "privacy.mode")
    if mode == "off":
        raise FedmodelError(
            f"--state-dir {state_dir}: the run in {run_dir} was made with "
            "privacy=off, so no client was charged and it keeps no privacy ledger"
        )
    if run_dir and mode == "central":
        # Its one ledger is the server's, in the run folder: not at the sites.
        ledger = run_dir / CENTRAL_LEDGER_FILE
        where = (
            f"; give --state-dir {run_dir}"
            if ledger.exists()
            else ", which no round has charged yet (it is written at the first)"
        )
        raise FedmodelError(
            f"--state-dir {state_dir}: the run in {run_dir} (privacy=central) "
            f"keeps one client-level ledger for every client, {ledger}{where}"
        )
    if value_at(config, "federation.name") == DEPLOYMENT:
        raise FedmodelError(
            f"--state-dir {state_dir} is a deployment's run folder on the server: "
            "each site keeps its privacy ledger at the site, in its SuperNode's "
            f"--state-dir (run this command there); {state_dir / SUMMARY_FILE} "
            "holds the epsilon each site reported"
        )


def _refuse_a_simulated_client(state_dir: Path) -> None:
    """Refuse to reset a simulated client's ledger (RUN/clients/client-<i>).

    A reset starts a new budget on data the old one did not cover; a
    simulated client trains on the same records all run, so resumed it would
    count them again from 0. The folder is judged by where it is, so
    `--state-dir client-0` from RUN/clients, or a link, is refused too.
    """
    run_dir = _simulated_run(state_dir)
    if run_dir is None:
        return
    raise FedmodelError(
        f"--state-dir {state_dir} is a simulated client's folder in the run "
        f"{run_dir}: it trains on the same records all run, so a new budget "
        "would not count what they already released; a new run in a folder of "
        "its own starts new budgets"
    )


def _simulated_run(state_dir: Path) -> Path | None:
    """The run whose simulated client's folder `state_dir` is, or None.

    Judged by where the folder is (RUN/clients/client-<i> beside the run's
    resolved config), so a relative path or a link to it counts too.
    """
    from fedmodel.run.layout import CLIENTS_DIR, RESOLVED_CONFIG

    folder = state_dir.resolve()
    run_dir = folder.parent.parent
    in_a_run = (run_dir / RESOLVED_CONFIG).is_file()
    return run_dir if folder.parent.name == CLIENTS_DIR and in_a_run else None
