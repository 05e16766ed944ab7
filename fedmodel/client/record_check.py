"""The simulated clients' records, checked before any Flower start-up.

`fedmodel simulate` calls this before it imports the simulation stack (Flower,
Ray, the apps: about ten seconds), so a client whose records cannot train, or
a `privacy.target_delta` that is not below 1/n for one of them, is reported
in seconds. A resume whose clients' records are not those their ledgers were
charged for stops here too, and so does one whose client's ledger cannot be
read or was edited, holds fewer steps or less epsilon than the server's
checkpoint recorded charging it, or was reset during the run. Nothing here
imports Flower or transformers; the privacy plan's accountants load Opacus,
and with it torch (most of the check's import time), so `fedmodel simulate`
first reads the records without them (`data/readable_records.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.config import RunSettings, TaskSettings
from fedmodel.config.wording import decimals_up, plural
from fedmodel.data.clients import load_client_data
from fedmodel.data.file_roles import client_file
from fedmodel.data.label_order import former_label_order
from fedmodel.errors import FedmodelError
from fedmodel.privacy.client_level import (
    check_central_ledger_kept,
    plan_client_level,
)
from fedmodel.privacy.client_plan import check_client_steps, choose_delta
from fedmodel.privacy.figure_keys import EPSILON_KEY, STEPS_KEY
from fedmodel.privacy.ledger_check import checked_epsilon
from fedmodel.privacy.ledger_holding import ledger_shortfall
from fedmodel.privacy.ledger_record import (
    LEDGER_FILE,
    LedgerRecord,
    LedgerRefusal,
    read_record,
)
from fedmodel.privacy.ledger_reset import archived_ledgers
from fedmodel.run.checkpoint import recorded_client_figures
from fedmodel.run.layout import simulated_client_dir
from fedmodel.run.resumed_labels import check_same_labels
from fedmodel.training.fingerprint import data_fingerprint

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)


def check_simulated_clients(settings: RunSettings, *, warn: bool = True) -> None:
    """Refuse a client whose data cannot train or whose delta is not below 1/n.

    Its plan must also have no more steps than its accountant may take
    (`check_client_steps`), so a plan too long for PRV stops before round 1.
    On `resume=true` each client's ledger must be usable and hold what the
    server recorded, and its records must be the ones it was charged for.
    Each ledger is read once for all three. Under `privacy=central` the server's
    ledger must hold what the checkpoint recorded. With `warn`, a resume also
    names the clients charged for a round it runs again (`warn_charged_ahead`).
    """
    if settings.privacy.client_level:
        plan_client_level(settings)  # a bad central-DP setting stops here
        if settings.resume:
            check_central_ledger_kept(
                Path(settings.run_dir), recorded_client_figures(Path(settings.run_dir))
            )
    ledgers: dict[int, LedgerRecord] = {}
    if settings.privacy.record_level and settings.resume:
        recorded = recorded_client_figures(Path(settings.run_dir))
        clients = set(range(settings.num_clients)) | set(recorded)
        check_not_reset(Path(settings.run_dir), clients)
        ledgers = _ledger_records(Path(settings.run_dir), clients)
        check_ledgers_kept(settings, recorded, ledgers)
        if warn:
            warn_charged_ahead(recorded, ledgers)
    for client_id in range(settings.num_clients):
        train_split, _, label_names = load_client_data(settings, client_id)
        if settings.privacy.record_level:
            choose_delta(
                len(train_split),
                settings.privacy.target_delta,
                client_id=str(client_id),
            )
            check_client_steps(
                settings, num_records=len(train_split), client_id=str(client_id)
            )
            if client_id in ledgers:
                check_same_records(
                    settings,
                    client_id,
                    train_split,
                    label_names=label_names,
                    charged=ledgers[client_id],
                )


def check_not_reset(run_dir: Path, clients: set[int]) -> None:
    """Refuse a resume whose client's ledger was reset since the run began.

    A site's operator resets a ledger to start a new budget on data the old
    one did not cover (`fedmodel ledger reset`, which archives it). A
    simulated client holds the same records all run (the resume checks
    them), so a new budget would count from 0 what those records already
    released, and the run's summary would state less than they spent. The
    server would take the raised reset count as a site's own decision.
    """
    for client_id in sorted(clients):
        state_dir = simulated_client_dir(run_dir, client_id)
        archived = archived_ledgers(state_dir)
        if archived:
            raise FedmodelError(
                f"resume=true in {run_dir}: client {client_id}'s privacy ledger "
                f"was reset during the run ({archived[-1]} holds what it spent): "
                "a simulated client trains on the same records all run, so a new "
                "budget would not count what they already released. Move "
                f"{archived[-1].name} back to {LEDGER_FILE} in {state_dir} (if no "
                "round charged it since), or start a new run in a folder of its own"
            )


def _ledger_records(run_dir: Path, clients: set[int]) -> dict[int, LedgerRecord]:
    """Each client's ledger as read from its file, by client id.

    A client without a ledger file has no entry. One that cannot be read, or
    whose history no longer spends what its last charge recorded (edited by
    hand), is refused as the client would refuse it when it opens the ledger
    (`PrivacyLedger.open`): left to the client, it would fail its round only
    after the others had trained and been charged for it.
    """
    ledgers: dict[int, LedgerRecord] = {}
    for client_id in sorted(clients):
        path = simulated_client_dir(run_dir, client_id) / LEDGER_FILE
        if not path.exists():  # as the client asks: a folder there is unusable
            continue
        try:
            ledgers[client_id] = read_record(path)
            checked_epsilon(path, ledgers[client_id])
        except LedgerRefusal as exc:  # `fedmodel ledger reset` refuses its folder
            raise exc.in_a_run() from exc
    return ledgers


def check_ledgers_kept(
    settings: RunSettings,
    recorded: dict[int, dict[str, float]],
    ledgers: dict[int, LedgerRecord],
) -> None:
    """Refuse a resume whose client's ledger holds less than it was charged.

    `recorded` holds the figures each client last reported, as the server's
    checkpoint keeps them (empty without a readable checkpoint: nothing to
    compare with); `ledgers` what each client's ledger file holds
    (`_ledger_records`). The rule is the server's (`ledger_regression`): a
    ledger that holds fewer steps or less epsilon than recorded lost charges,
    its file deleted since or replaced by an older copy. The server's ledger
    query refuses such a client before it trains (federation/ledger_query.py),
    but only once the simulation stack has started, and then the run goes on
    without it or stops. So the resume stops here, in seconds, naming the
    ledger. A raised reset count excuses nothing here, as it would at a
    site's: a simulated client's reset ledger is refused before this, naming
    its archive (`check_not_reset`).
    """
    run_dir = Path(settings.run_dir)
    for client_id, figures in sorted(recorded.items()):
        record = ledgers.get(client_id)
        state_dir = simulated_client_dir(run_dir, client_id)
        holds = ledger_shortfall(figures, record, state_dir, count=_steps)
        if holds is None:
            continue
        raise FedmodelError(
            f"resume=true in {run_dir}: client {client_id}'s privacy ledger "
            f"{state_dir / LEDGER_FILE} {holds}, but the run's checkpoint recorded "
            f"{figures.get(STEPS_KEY, 0):.0f} steps (epsilon "
            f"{decimals_up(figures.get(EPSILON_KEY, 0.0), 4)}) charged to it: "
            "resumed, the client would train and send its update from a ledger "
            "that does not count what it already released. Restore the client's "
            "ledger, or start a new run in a folder of its own"
        )


def warn_charged_ahead(
    recorded: dict[int, dict[str, float]], ledgers: dict[int, LedgerRecord]
) -> None:
    """Name the clients charged for a round the run's checkpoint does not hold.

    A client's ledger is charged before it trains (write-ahead), so a stop in
    the middle of a round (Ctrl-C, SIGTERM, a kill) leaves the clients that
    began it charged for a round the run did not keep, and the resume runs
    that round again and charges it again: an over-count, never an
    under-count. A client may then reach its target a round early and sit
    out the last round, which before came with no word why.
    """
    ahead = [
        client_id
        for client_id, figures in sorted(recorded.items())
        if client_id in ledgers and ledgers[client_id].steps > figures.get(STEPS_KEY, 0)
    ]
    if ahead:
        logger.warning(
            "the privacy %s of %s %s charged for more steps than the run's "
            "checkpoint recorded: "
            "a round the run did not keep (one a stop cut short, or whose "
            "update the server did not take, after the ledger was charged) is "
            "run again and charged again, an over-count, never an under-count, so "
            "%s may reach %s target a round early and sit out the last round",
            plural(len(ahead), "ledger"),
            f"{plural(len(ahead), 'client')} {', '.join(map(str, ahead))}",
            plural(len(ahead), "was", "were"),
            plural(len(ahead), "it", "they"),
            plural(len(ahead), "its", "their"),
        )


def _steps(steps: int) -> str:
    return f"{steps} steps"


def check_same_records(
    settings: RunSettings,
    client_id: int,
    train_split: datasets.Dataset,
    *,
    label_names: tuple[str, ...],
    charged: LedgerRecord,
) -> None:
    """Refuse a resume whose client holds records its ledger was not charged for.

    A simulated client's records are dealt from the task's data. If that data
    changed since the run began (a `task.train_files` file edited, say), the
    deal moves records between clients, and a record could be charged under
    two ledgers that each count only their own. The settings that decide the
    deal are checked with the run folder (`run/resumed_settings.py`); this checks
    the records themselves. A run begun before whole-number labels were
    ordered by value holds the same records under other label ids: that is
    refused too, and the message says so. `charged` is the client's ledger
    as read.
    """
    path = simulated_client_dir(settings.run_dir, client_id) / LEDGER_FILE
    fingerprint = data_fingerprint(train_split)
    if charged.data_fingerprint == fingerprint:
        return
    check_same_labels(Path(settings.run_dir), label_names)
    former = _former_fingerprint(settings.task, train_split, label_names)
    if charged.data_fingerprint == former:
        raise FedmodelError(
            f"resume=true in {settings.run_dir}: client {client_id}'s training "
            f"records are the ones its privacy ledger {path} was charged for, but "
            "under other label ids: whole-number labels are ordered by value now, "
            "as text when the run began, and the run's ledgers and model hold "
            "that order. Start a new run in a folder of its own"
        )
    held = client_file(settings, client_id)
    its_file = f", task.train_files[{client_id}] {held}," if held else ""
    raise FedmodelError(
        f"resume=true in {settings.run_dir}: client {client_id}'s training "
        f"records are not the ones its privacy ledger {path} was charged for "
        f"(fingerprint {charged.data_fingerprint}, now {fingerprint}). The task's "
        f"data{its_file} changed since the run began, so its records would be "
        "dealt out again and a record could be charged under two clients' "
        "ledgers. Restore the data the run began with, or start a new run in a "
        "folder of its own"
    )


def _former_fingerprint(
    task: TaskSettings, split: datasets.Dataset, label_names: tuple[str, ...]
) -> str | None:
    """The records' fingerprint under the former label order's ids.

    None where that order is this one (the fingerprint would be the same).
    """
    former = former_label_order(task, label_names)
    if former is None or former == label_names:
        return None
    former_id = {name: i for i, name in enumerate(former)}
    labels = [former_id[label_names[label]] for label in split["label"]]
    return data_fingerprint(split.remove_columns("label").add_column("label", labels))
