"""Flower ClientApp: translate messages to and from one local round.

The same app runs in simulation (one virtual SuperNode per client) and at a
site (a real SuperNode). Its reply holds the trainable weights and numbers only.

Flower 1.41 starts a fresh process for every message a SuperNode receives, so
what this module imports is paid once per round at every site: the data,
model-loading and distillation modules are imported only by the rounds that
need them (see `fedmodel.client.local_round`), and a site in head mode trains
on the features it stored in round 1. At a site each message's timings are
appended to `message_timings.jsonl` in its state directory.
"""

from __future__ import annotations

import time

_APP_IMPORT_STARTED = time.time()

from pathlib import Path  # noqa: E402

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from fedmodel.client.local_round import RoundOutcome, run_local_round  # noqa: E402
from fedmodel.client.site import (  # noqa: E402
    capped_settings,
    record_message_timings,
    site_from_node_config,
)
from fedmodel.client.site_data import site_round_records  # noqa: E402
from fedmodel.config import (  # noqa: E402
    RunSettings,
    from_run_config,
    settings_from_dict,
)
from fedmodel.federation.strategy import (  # noqa: E402
    ARRAYS_KEY,
    CLIENT_ID_KEY,
    EXHAUSTED_KEY,
    METRICS_KEY,
    TEACHER_KEY,
)

app = ClientApp()

# Keys of the node config (simulation sets the first two itself).
PARTITION_ID = "partition-id"
STATE_DIR = "state-dir"
# Keys Flower's strategies add to the train config (the rest is our run-config).
FLOWER_KEYS = ("proximal-mu",)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received weights locally and reply with the update.

    A message that also carries the teacher's weights is a federated
    distillation round: the received weights are the student's.
    """
    entered = time.time()
    config = dict(msg.content["config"])
    round_number = int(str(config.pop("server-round")))
    for key in FLOWER_KEYS:
        config.pop(key, None)
    settings = settings_from_dict(from_run_config(config))
    site = site_from_node_config(context.node_config)
    arrays = msg.content.array_records
    teacher = arrays.get(TEACHER_KEY)
    if site is None:
        client_id = int(context.node_config[PARTITION_ID])
        state_dir = client_state_dir(settings, context, client_id)
        records = None
    else:
        settings = capped_settings(settings, site)
        client_id, state_dir = site.site_id, site.state_dir
        records = site_round_records(
            settings,
            site,
            head_features=settings.finetune.mode == "head" and teacher is None,
        )
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
    trained = time.time()
    reply = Message(content=_reply_content(outcome, client_id), reply_to=msg)
    if site is not None:
        record_message_timings(
            site.state_dir,
            round_number=round_number,
            app_import_started=_APP_IMPORT_STARTED,
            stages={
                "imports": entered - _APP_IMPORT_STARTED,
                "data": data_loaded - entered,
                "model_load": outcome.prepare_seconds,
                "training": trained - data_loaded - outcome.prepare_seconds,
                "reply": time.time() - trained,
            },
        )
    return reply


def client_state_dir(settings: RunSettings, context: Context, client_id: int) -> Path:
    """Where this client keeps its ledger and caches.

    A site names it in its node config; in simulation it sits in the run folder.
    """
    if STATE_DIR in context.node_config:
        return Path(str(context.node_config[STATE_DIR]))
    return Path(settings.run_dir) / "clients" / f"client-{client_id}"


def _reply_content(outcome: RoundOutcome, client_id: int) -> RecordDict:
    metrics: dict[str, int | float | list[int] | list[float]] = {
        **outcome.released_metrics(),
        CLIENT_ID_KEY: client_id,
        EXHAUSTED_KEY: int(outcome.budget_exhausted),
    }
    content = RecordDict({METRICS_KEY: MetricRecord(metrics)})
    if outcome.weights is not None:
        content[ARRAYS_KEY] = ArrayRecord(outcome.weights)
    return content
