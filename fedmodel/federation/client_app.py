"""Flower ClientApp: translate messages to and from one local round.

The same app runs in simulation (one virtual SuperNode per client) and at a
site (a real SuperNode). Its reply holds the trainable weights and numbers
only; a round that fails replies with one line saying why (never a traceback,
never a record), so the server can name the client and its reason. Before a
round trains, the client's ledger is checked against what the server recorded
(`federation/ledger_query.py`): a train message that carries those figures is
refused before anything is read or charged where the ledger holds less, and a
query message asks what the ledger holds, for the server to check.

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
from pathlib import Path  # noqa: E402
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

import fedmodel  # noqa: E402
from fedmodel.client.message_timings import record_message_timings  # noqa: E402
from fedmodel.client.site import (  # noqa: E402
    SIMULATED_CLIENT,
    SiteConfig,
    capped_settings,
    check_site_run_config,
    site_from_node_config,
)
from fedmodel.client.site_agreement import check_site_agreement  # noqa: E402
from fedmodel.config import (  # noqa: E402
    RunSettings,
    from_run_config,
    settings_from_dict,
)
from fedmodel.config.wording import plural  # noqa: E402
from fedmodel.errors import FedmodelError  # noqa: E402
from fedmodel.federation.continuity import check_recorded_ledger  # noqa: E402
from fedmodel.federation.messages import (  # noqa: E402
    ARRAYS_KEY,
    CLIENT_CRASHED,
    CLIENT_ID_KEY,
    CLIENT_REFUSED,
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
from fedmodel.privacy.durable_file import remove_stale_temp_files  # noqa: E402
from fedmodel.privacy.figure_keys import LEDGER_RESETS_KEY  # noqa: E402
from fedmodel.privacy.ledger_holding import held_figures  # noqa: E402
from fedmodel.privacy.ledger_record import LEDGER_FILE, LedgerRefusal  # noqa: E402
from fedmodel.privacy.ledger_reset import reset_count  # noqa: E402
from fedmodel.run.console import setup_logging  # noqa: E402
from fedmodel.run.layout import simulated_client_dir  # noqa: E402

if TYPE_CHECKING:
    import datasets

    from fedmodel.client.local_round import RoundOutcome
    from fedmodel.training.feature_store import StoredFeatures

app = ClientApp()
log = logging.getLogger(__name__)

# Keys Flower's strategies add to the train config (the rest is our run-config).
FLOWER_KEYS = ("proximal-mu",)


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
    (`federation/ledger_query.py`): only the ledger file is read, no record
    and no model, and nothing is charged.
    """
    return _answer(msg, context, _ledger_figures)


def _answer(
    msg: Message,
    context: Context,
    work: Callable[[Message, Context, int], RecordDict],
) -> Message:
    """Reply with what `work` returns, or with one line saying why it failed.

    The line is the FedmodelError's message, or the type and message of an
    unexpected exception (its traceback stays in this client's log). A
    deployed site sends an unexpected exception's type alone: its message can
    quote a record (a character a codec refused, say), so it stays in the
    site's log.
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
        content = work(msg, context, client_id)
    except FedmodelError as exc:
        if site is None and isinstance(exc, LedgerRefusal):
            exc = exc.in_a_run()  # `fedmodel ledger reset` refuses its folder
        log.warning("client %s: %s", client_id, exc)
        return _failure(msg, CLIENT_REFUSED, failure_reason(client_id, str(exc)))
    except Exception as exc:  # noqa: BLE001 - the server must learn why
        text = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if site is None:
            log.debug("client %s crashed", client_id, exc_info=True)
        else:
            log.error("site %s crashed: %s", client_id, text, exc_info=True)
            text = f"{type(exc).__name__} (the site's log has its message)"
        return _failure(msg, CLIENT_CRASHED, failure_reason(client_id, text))
    return Message(content=content, reply_to=msg)


def _ledger_figures(msg: Message, context: Context, client_id: int) -> RecordDict:
    """The client's id and what its ledger file holds, as a reply's numbers."""
    config = msg.content[CONFIG_KEY]
    check_server_version(config.get(VERSION_KEY))
    site = site_from_node_config(context.node_config)
    state_dir = client_state_dir(site, str(config[RUN_DIR_KEY]), client_id)
    figures: dict[str, int | float | list[int] | list[float]] = {
        **held_figures(state_dir),
        CLIENT_ID_KEY: client_id,
    }
    return RecordDict({METRICS_KEY: MetricRecord(figures)})


def _train(msg: Message, context: Context, client_id: int) -> RecordDict:
    # Here, not at the top: it imports torch and Opacus, which a query never needs.
    from fedmodel.client.local_round import run_local_round

    entered = time.time()  # after that import: the "imports" stage holds it
    site = site_from_node_config(context.node_config)
    round_number, settings = _round_settings(msg, site)
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
        records = _site_records(settings, site, round_number, distill=distill)
    _sweep_temp_files(state_dir, client_id)
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


def _site_records(
    settings: RunSettings, site: SiteConfig, round_number: int, *, distill: bool
) -> tuple[datasets.Dataset | StoredFeatures, tuple[str, ...]]:
    """What the site trains on this round (`site_round_records`), said in its log."""
    # Here, not at the top: the feature store imports torch.
    from fedmodel.client.site_data import site_round_records

    # Which code trains on the site's records: with `fedmodel flwr-app`'s
    # bundle, the site's own installed fedmodel.
    log.info(
        "site %d: round %d, fedmodel %s from %s",
        site.site_id,
        round_number,
        fedmodel.__version__,
        Path(fedmodel.__file__).parent,
    )
    # The mode by name, not by the registry (model/finetune.py): that
    # imports transformers, which a site's message process keeps out of
    # its start-up until it trains (test_site_features.py checks it).
    return site_round_records(
        settings, site, head_features=settings.finetune.mode == "head" and not distill
    )


def _sweep_temp_files(state_dir: Path, client_id: int) -> None:
    """Remove what a killed round left in the client's folder.

    The ledger's temp files go under its lock; the feature store's once they
    are an hour old (it takes no lock).
    """
    from fedmodel.training.feature_store import sweep_stale_temp_files  # torch

    removed = remove_stale_temp_files(state_dir / LEDGER_FILE)
    if removed:
        log.info(
            "client %d: removed %d stale temp %s",
            client_id,
            len(removed),
            plural(len(removed), "file"),
        )
    sweep_stale_temp_files(state_dir)


def _round_settings(msg: Message, site: SiteConfig | None) -> tuple[int, RunSettings]:
    """The round number and the server's settings, checked before any is used."""
    config = dict(msg.content[CONFIG_KEY])
    round_number = int(str(config.pop("server-round")))
    check_server_version(config.pop(VERSION_KEY, None))
    for key in FLOWER_KEYS:
        config.pop(key, None)
    raw = from_run_config(config)
    if site is None:
        return round_number, settings_from_dict(raw)
    check_site_run_config(raw, site)  # before anything reads the site's disk
    settings = settings_from_dict(raw)
    check_site_agreement(settings, site)  # before the site's file is read
    return round_number, settings


def client_state_dir(site: SiteConfig | None, run_dir: str, client_id: int) -> Path:
    """Where this client keeps its ledger and caches.

    A site names it in its node config; in simulation it sits in the run folder.
    """
    return simulated_client_dir(run_dir, client_id) if site is None else site.state_dir


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
