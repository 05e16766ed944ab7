"""Flower ClientApp: translate messages to and from one local round.

The same app runs in simulation (one virtual SuperNode per client) and at a
site (a real SuperNode). Its reply holds the trainable weights and numbers
only; a round that fails replies with one line saying why (never a traceback,
never a record), so the server can name the client and its reason. Before a
round trains, the client's ledger is checked against what the server recorded
(`federation/ledger_query.py`): a train message that carries those figures is
refused before anything is read or charged where the ledger holds less, and a
query message asks what the ledger holds, for the server to check. What a train
message sets up before its round (settings, state folder, records) is in
`federation/round_setup.py`.

Flower 1.41 starts a fresh process for every message a SuperNode receives, so what this
module imports is paid for every message at every site (the ledger query's and the
train message's). The local round's modules (torch, Opacus) are imported by the train
handler only, so a query's process loads neither; the data, model-loading and
distillation modules only by the rounds that need them (see `fedmodel.client.jobs`),
and a site in head mode trains on the features it stored in round 1. At a site each
train message's timings are appended to `message_timings.jsonl` in its state directory.
"""

from __future__ import annotations

import time

_APP_IMPORT_STARTED = time.time()

import logging  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from flwr.app import (  # noqa: E402
    ArrayRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402

from fedmodel.client.message_timings import record_message_timings  # noqa: E402
from fedmodel.client.site import (  # noqa: E402
    SIMULATED_CLIENT,
    RunRefusal,
    SiteConfig,
    capped_settings,
    site_from_node_config,
)
from fedmodel.errors import FedmodelError  # noqa: E402
from fedmodel.federation.continuity import check_recorded_ledger  # noqa: E402
from fedmodel.federation.messages import (  # noqa: E402
    ARRAYS_KEY,
    CLIENT_CRASHED,
    CLIENT_ID_KEY,
    CLIENT_REFUSED,
    CLIENT_REFUSED_RUN,
    CONFIG_KEY,
    EXHAUSTED_KEY,
    METRICS_KEY,
    RECORDED_KEY,
    RUN_DIR_KEY,
    TEACHER_KEY,
    VERSION_KEY,
    check_server_version,
    failure_reason,
)
from fedmodel.federation.round_setup import (  # noqa: E402
    client_state_dir,
    round_settings,
    site_records,
    sweep_temp_files,
)
from fedmodel.privacy.figure_keys import LEDGER_RESETS_KEY  # noqa: E402
from fedmodel.privacy.ledger_holding import held_figures  # noqa: E402
from fedmodel.privacy.ledger_record import LedgerRefusal  # noqa: E402
from fedmodel.privacy.ledger_reset import reset_count  # noqa: E402
from fedmodel.run.console import setup_logging  # noqa: E402

if TYPE_CHECKING:
    from fedmodel.client.local_round import RoundOutcome

app = ClientApp()
log = logging.getLogger(__name__)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received weights locally and reply with the update.

    A message that also carries the teacher's weights is a federated
    distillation round: the received weights are the student's.
    """
    return _answer(msg, context, _train)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Reply with what this client's privacy ledger holds; nothing is trained.

    The server asks before a round's train message, in rounds where it
    recorded what clients spent and cannot tell this node which client it is
    (`federation/ledger_query.py`), or where it draws a share of the clients
    by id and has not heard from this node (`federation/client_choice.py`):
    only the ledger file is read, no record and no model, and nothing is
    charged.
    """
    return _answer(msg, context, _ledger_figures)


def _answer(
    msg: Message,
    context: Context,
    work: Callable[[Message, SiteConfig | None, int], RecordDict],
) -> Message:
    """Reply with what `work` returns, or with one line saying why it failed.

    `work` is handed the message, the node's site (None: a simulated client)
    and its client id, read here from the node config once. The line is the
    FedmodelError's message, or the type and message of an unexpected
    exception (its traceback stays in this client's log). A deployed site
    sends an unexpected exception's type alone: its message can quote a
    record (a character a codec refused, say), so it stays in the site's log.
    """
    setup_logging()  # this process too: Flower's lines off the console
    client_id: int | None = None
    site = None
    try:
        site = site_from_node_config(context.node_config)
        if site is None:
            client_id = int(context.node_config[SIMULATED_CLIENT])
        else:
            client_id = site.site_id
        content = work(msg, site, client_id)
    except FedmodelError as exc:
        if site is None and isinstance(exc, LedgerRefusal):
            exc = exc.in_a_run()  # `fedmodel ledger reset` refuses its folder
        log.warning("client %s: %s", client_id, exc)
        code = CLIENT_REFUSED_RUN if isinstance(exc, RunRefusal) else CLIENT_REFUSED
        return _failure(msg, code, failure_reason(client_id, str(exc)))
    except Exception as exc:  # noqa: BLE001 - the server must learn why
        text = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if site is None:
            log.debug("client %s crashed", client_id, exc_info=True)
        else:
            log.error("site %s crashed: %s", client_id, text, exc_info=True)
            text = f"{type(exc).__name__} (the site's log has its message)"
        return _failure(msg, CLIENT_CRASHED, failure_reason(client_id, text))
    return Message(content=content, reply_to=msg)


def _ledger_figures(
    msg: Message, site: SiteConfig | None, client_id: int
) -> RecordDict:
    """The client's id and what its ledger file holds, as a reply's numbers."""
    config = msg.content[CONFIG_KEY]
    check_server_version(config.get(VERSION_KEY))
    state_dir = client_state_dir(site, str(config[RUN_DIR_KEY]), client_id)
    figures: dict[str, int | float | list[int] | list[float]] = {
        **held_figures(state_dir),
        CLIENT_ID_KEY: client_id,
    }
    return RecordDict({METRICS_KEY: MetricRecord(figures)})


def _train(msg: Message, site: SiteConfig | None, client_id: int) -> RecordDict:
    # Here, not at the top: it imports torch and Opacus, which a query never needs.
    from fedmodel.client.local_round import run_local_round

    entered = time.time()  # after that import: the "imports" stage holds it
    round_number, settings = round_settings(msg, site)
    arrays = msg.content.array_records
    teacher = arrays.get(TEACHER_KEY)
    state_dir = client_state_dir(site, settings.run_dir, client_id)
    recorded = msg.content.config_records.get(RECORDED_KEY)
    if recorded is not None:  # before a record is read or a step charged
        check_recorded_ledger(
            recorded, client_id=client_id, state_dir=state_dir, simulated=site is None
        )
    records = None
    if site is not None:
        settings = capped_settings(settings, site)
        distill = teacher is not None
        records = site_records(settings, site, round_number, distill=distill)
    sweep_temp_files(state_dir, client_id)
    data_loaded = time.time()
    outcome = run_local_round(
        settings,
        client_id=client_id,
        state_dir=state_dir,
        global_weights=arrays[ARRAYS_KEY].to_torch_state_dict(),
        round_number=round_number,
        records=records,
        teacher_weights=None if teacher is None else teacher.to_torch_state_dict(),
    )
    ledger_marks = {}
    if outcome.privacy:
        ledger_marks = {LEDGER_RESETS_KEY: reset_count(state_dir)}
    trained = time.time()
    content = _reply_content(outcome, client_id, ledger_marks)
    if site is not None:
        record_message_timings(
            site.state_dir,
            round_number=round_number,
            app_import_started=_APP_IMPORT_STARTED,
            moments=(entered, data_loaded, trained),
            prepare_seconds=outcome.prepare_seconds,
        )
    return content


def _failure(msg: Message, code: int, reason: str) -> Message:
    return Message(error=Error(code=code, reason=reason), reply_to=msg)


def _reply_content(
    outcome: RoundOutcome, client_id: int, ledger_marks: dict[str, int]
) -> RecordDict:
    metrics: dict[str, int | float | list[int] | list[float]] = {
        **outcome.released_metrics(),
        **ledger_marks,
        CLIENT_ID_KEY: client_id,
        EXHAUSTED_KEY: int(outcome.budget_exhausted),
    }
    content = RecordDict({METRICS_KEY: MetricRecord(metrics)})
    if outcome.weights is not None:
        content[ARRAYS_KEY] = ArrayRecord(outcome.weights)
    return content
