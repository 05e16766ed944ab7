"""The message protocol between the ServerApp and the ClientApps.

Record and metric keys, how a client words a failure (a Flower `Error` whose
reason is one user-facing line, prefixed with the client's id) and the
server's check that a train reply holds weights and numbers only. Both apps
import it; neither imports the other.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, Message, RecordDict
from flwr.common.constant import ErrorCode

from fedmodel import __version__
from fedmodel.errors import FedmodelError
from fedmodel.privacy.figure_keys import (
    DELTA_KEY,
    EPSILON_KEY,
    LEDGER_RESETS_KEY,
    NOISE_MULTIPLIER_KEY,
    ROUND_STEPS_KEY,
    SAMPLE_RATE_KEY,
    STEPS_KEY,
)

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
# A train message's config record: the server's resolved settings
# (`to_run_config`), `budget-rule-keys` among them: the keys its budget rule
# filled, which a site whose cap is below the target takes from the rule.
CONFIG_KEY = "config"
# The run folder in a message's config: a simulated client's state folder is
# in it (a site's is in its node config).
RUN_DIR_KEY = "run-dir"
EXHAUSTED_KEY = "budget-exhausted"
CLIENT_ID_KEY = "client-id"
NUM_EXAMPLES_KEY = "num-examples"
# The dtype of every weight a train message or reply carries.
WEIGHT_DTYPE = np.dtype(np.float32)
# In federated distillation rounds the teacher's weights travel beside the
# student's (ARRAYS_KEY).
TEACHER_KEY = "teacher"
# A train message to a node the server recorded figures from in this server
# process carries them back, with the client id it reported them as
# (`ledger_query.py`): the client refuses to train on a ledger holding less.
RECORDED_KEY = "recorded-ledger"

# The server's fedmodel version, in every train message's config. Each machine
# runs the fedmodel installed on it (`fedmodel flwr-app`), so a client
# refuses a round from another version (`check_server_version`).
VERSION_KEY = "fedmodel-version"

# Error codes of a client's failure reply (Flower's own codes are below 100).
# All are permanent: the same ledger, data and settings fail the same way.
CLIENT_REFUSED = 100  # a FedmodelError: its ledger, its data or its settings
CLIENT_CRASHED = 101  # any other exception in the client's round
# A site refused a setting the run keeps on resume (`client.site.RunRefusal`).
CLIENT_REFUSED_RUN = 102
OUR_CODES = (CLIENT_REFUSED, CLIENT_CRASHED, CLIENT_REFUSED_RUN)
# Flower's codes for a ClientApp that could not load or raised: as lasting.
# Its others (a node or message unavailable, a timeout) may pass by themselves.
PERMANENT_CODES = (
    *OUR_CODES,
    ErrorCode.LOAD_CLIENT_APP_EXCEPTION,
    ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
)

# The most records a reply may claim (FedAvg's weight): 2**53, the counts a
# float holds exactly. Two claims near float's maximum summed to inf, which
# made every weight 0 and the aggregate a model of zeros.
_MOST_RECORDS = 2**53
# Numbers no client sends below 0, and those a record-level DP reply must carry.
_NOT_NEGATIVE = (
    EPSILON_KEY,
    DELTA_KEY,
    STEPS_KEY,
    ROUND_STEPS_KEY,
    LEDGER_RESETS_KEY,
    NOISE_MULTIPLIER_KEY,
    SAMPLE_RATE_KEY,
    NUM_EXAMPLES_KEY,
    CLIENT_ID_KEY,
)
_LEDGER_KEYS = (EPSILON_KEY, STEPS_KEY)

_CLIENT_PREFIX = re.compile(r"^client (-?\d+): (.*)$", re.DOTALL)
# How Python prints our error inside a traceback that Ray or Flower wrapped.
_WRAPPED_ERROR = re.compile(r"fedmodel\.\w+(?:\.\w+)*Error: (.+)")


@dataclass(frozen=True)
class ClientFailure:
    """Why one client gave the server nothing usable in a round.

    `refuses_run`: a site refused a setting the run keeps on resume, such as
    its labels or privacy mode (`CLIENT_REFUSED_RUN`).
    """

    round: int
    node_id: int
    client_id: int | None
    reason: str
    permanent: bool
    refuses_run: bool = False

    @property
    def who(self) -> str:
        """The client's name for a log line: its id, else its node."""
        if self.client_id is None:
            return f"node {self.node_id}"
        return f"client {self.client_id}"


def check_server_version(server_version: object) -> None:
    """Refuse a round whose server runs another fedmodel version than this one."""
    if server_version == __version__:
        return
    said = server_version or "a version too old to say which"
    raise FedmodelError(
        f"the server runs fedmodel {said} and this machine fedmodel "
        f"{__version__}: every machine of a federation needs the same version; "
        "install the server's here (or the other way round) and start the "
        "SuperNode again"
    )


def failure_reason(client_id: int | None, message: str) -> str:
    """A failure reply's reason: one line, prefixed with the client's id."""
    line = " ".join(message.split())
    return line if client_id is None else f"client {client_id}: {line}"


def read_failure(
    server_round: int, reply: Message, *, node_id: int, known: int | None = None
) -> ClientFailure:
    """The failure an error reply about `node_id` carries, as one user-facing line.

    Our ClientApp words its own failures; anything else (a Ray or Flower
    traceback) is searched for a fedmodel error, else its last line is kept.
    `known` is the client the node answered for before, named where the
    reply names none.
    """
    raw = reply.error.reason or f"error code {reply.error.code}"
    code = int(reply.error.code)
    client_id = known
    match = _CLIENT_PREFIX.match(raw) if code in OUR_CODES else None
    if match:
        client_id, text = int(match.group(1)), match.group(2)
    else:
        wrapped = _WRAPPED_ERROR.findall(raw)
        lines = [line.strip() for line in raw.splitlines() if line.strip()]
        text = wrapped[-1] if wrapped else (lines[-1] if lines else raw)
    return ClientFailure(
        round=server_round,
        node_id=node_id,
        client_id=client_id,
        reason=" ".join(text.split()),
        permanent=code in PERMANENT_CODES or bool(_WRAPPED_ERROR.search(raw)),
        refuses_run=code == CLIENT_REFUSED_RUN,
    )


def reply_problem(
    content: RecordDict, expected_shapes: dict[str, tuple[int, ...]]
) -> str | None:
    """Why a train reply is unacceptable, or None if it is fine.

    A reply may hold one MetricRecord of numbers and, unless the client's
    budget is spent, one ArrayRecord with exactly the expected finite weights.
    Anything else (config records, strings, extra arrays) is refused.
    """
    problem = metrics_problem(content, privacy_figures=False)  # `_reported` asked
    if problem:
        return problem
    if content.metric_records[METRICS_KEY].get(EXHAUSTED_KEY, 0):
        return "spent client sent weights" if content.array_records else None
    examples = content.metric_records[METRICS_KEY].get(NUM_EXAMPLES_KEY)
    if not (
        isinstance(examples, int | float)
        and float(examples).is_integer()
        and 1 <= examples <= _MOST_RECORDS
    ):
        return (
            f"metric {NUM_EXAMPLES_KEY!r} must be a whole count from 1 to "
            f"{_MOST_RECORDS}, got {examples!r}"
        )
    if set(content.array_records) != {ARRAYS_KEY}:
        return f"array records {sorted(content.array_records)} != ['{ARRAYS_KEY}']"
    arrays = content.array_records[ARRAYS_KEY]
    if set(arrays) != set(expected_shapes):
        extra = sorted(set(arrays) - set(expected_shapes))[:3]
        missing = sorted(set(expected_shapes) - set(arrays))[:3]
        return f"weights do not match the model (extra {extra}, missing {missing})"
    for name, array in arrays.items():
        problem = _weight_problem(name, array, expected_shapes[name])
        if problem:
            return problem
    return None


def as_weights(arrays: ArrayRecord) -> ArrayRecord:
    """`arrays` in WEIGHT_DTYPE, as a train message carries them.

    A value past float32's range becomes inf (the round loop keeps the model).
    """
    with np.errstate(over="ignore"):
        return ArrayRecord(
            {n: Array(a.numpy().astype(WEIGHT_DTYPE)) for n, a in arrays.items()}
        )


def _weight_problem(name: str, array: Array, shape: tuple[int, ...]) -> str | None:
    """Why one weight of a reply cannot be aggregated, or None.

    What counts is the array its bytes hold, not the shape and dtype the
    record declares beside them: Flower's strategies read the bytes. Every
    model fedmodel trains is float32; FedAvg gives the aggregate the first
    reply's dtype, so one float16 reply would round the global model to it,
    and a float64 value past float32's range would load as inf.
    """
    try:
        values = array.numpy()
    except (ValueError, TypeError, OSError, EOFError) as exc:
        return f"weight {name!r} cannot be read ({exc})"
    if values.dtype != WEIGHT_DTYPE:
        return f"weight {name!r} has dtype {values.dtype}, not {WEIGHT_DTYPE}"
    if values.shape != shape:
        return f"weight {name!r} has shape {values.shape}, expected {shape}"
    if not np.isfinite(values).all():
        return f"weight {name!r} holds NaN or inf"
    return None


def metrics_problem(
    content: RecordDict, *, privacy_figures: bool, client_ids: range | None = None
) -> str | None:
    """Why a reply's metrics cannot be read, or None: numbers and a client id.

    `privacy_figures`: the run has record-level DP, so every reply carries
    its ledger's epsilon and steps; one without would leave the server's
    record of that client, and the run's stated epsilon, short of its spend.
    `client_ids`: the ids the server gave its clients (a simulation's
    0..num_clients-1); None where sites name their own (`--site-id`, any
    whole number). Any other id would add a client to the server's figures,
    and to the budget stop's count of spent clients.
    """
    if content.config_records:
        return f"unexpected config records {sorted(content.config_records)}"
    if set(content.metric_records) != {METRICS_KEY}:
        return f"metric records {sorted(content.metric_records)} != ['{METRICS_KEY}']"
    metrics = content.metric_records[METRICS_KEY]
    for key, value in metrics.items():
        if isinstance(value, list):
            return f"metric {key!r} is a list, not a number"
        if not math.isfinite(value):
            return f"metric {key!r} is not a finite number: {value!r}"
        if key in _NOT_NEGATIVE and value < 0:
            return f"metric {key!r} is negative: {value!r}"
    required = (CLIENT_ID_KEY, *(_LEDGER_KEYS if privacy_figures else ()))
    for key in required:
        if key not in metrics:
            return f"metric {key!r} is missing"
    client_id = metrics[CLIENT_ID_KEY]
    if not float(client_id).is_integer():  # type: ignore[arg-type]
        return f"metric {CLIENT_ID_KEY!r} is not a whole number: {client_id!r}"
    named = int(client_id)  # type: ignore[arg-type]
    if client_ids is not None and named not in client_ids:
        return (
            f"it names client {named}, but this run's client ids are 0 to "
            f"{len(client_ids) - 1} (num_clients={len(client_ids)})"
        )
    if metrics.get(EXHAUSTED_KEY, 0) not in (0, 1):
        return f"metric {EXHAUSTED_KEY!r} is not 0 or 1: {metrics[EXHAUSTED_KEY]!r}"
    return None
