"""summary.json: what a run did, in one typed record.

Besides the accuracies and timings it says which rounds aggregated what, which
clients failed and why, and every charge the clients' ledgers hold, whether or
not the server used the update that charge paid for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedmodel.config import RunSettings
from fedmodel.config.modes import SIMULATION
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.privacy.figure_keys import (
    DELTA_KEY,
    EPSILON_BEFORE_RESET_KEY,
    EPSILON_KEY,
    NOISE_MULTIPLIER_KEY,
    REFUSED_DELTA_KEY,
    REFUSED_EPSILON_KEY,
    SAMPLE_RATE_KEY,
    STEPS_KEY,
)
from fedmodel.privacy.ledger_record import LEDGER_FILE
from fedmodel.privacy.ledger_reset import (
    central_ledger_status,
    ledger_status,
    reset_count,
)
from fedmodel.privacy.modes import privacy_guarantee
from fedmodel.run.layout import SUMMARY_FILE, simulated_client_dir
from fedmodel.run.metrics import write_json

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
# An earlier start's summary while a resumed start trains on (`mark_resumed`).
STATUS_RESUMED = "resumed"
# A client row's key: its ledger is in the run folder but cannot be read.
LEDGER_UNREADABLE = "ledger_unreadable"


class RunFailed(FedmodelError):
    """The run ended failed, after writing summary.json with status failed."""


@dataclass(frozen=True)
class FailedClient:
    """One client's failure, as summary.json lists it (never a traceback)."""

    client_id: int | None
    node_id: int
    round: int
    reason: str
    permanent: bool


@dataclass
class RunSummary:
    """Everything summary.json holds; `finished` adds the model reports."""

    task: str
    finetune_mode: str
    privacy: str
    model_dir: str
    # Whether the head began from a kept warm start (None: a resumed run
    # whose checkpoint predates recording it).
    warm_start: bool | None
    initial_accuracy: float
    final_accuracy: float
    final_macro_f1: float
    rounds_completed: int
    wall_seconds: float
    # Pure compute, for the simulation-overhead benchmark: the clients'
    # local rounds and the server's warm start and evaluations. None where a
    # client did not report its time (under DP, so in every deployment, it
    # does not) or no round aggregated an update.
    client_compute_seconds: float | None
    server_compute_seconds: float
    privacy_guarantee: dict[str, Any]
    clients: list[dict[str, Any]]
    # The round whose model keep_best kept: the last aggregated round's, or 0
    # (the start) where the start's loss on the server's own split was lower.
    # None: keep_best off or no such split, the last round is kept.
    selected_round: int | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    failed_clients: list[FailedClient] = field(default_factory=list)
    status: str = STATUS_OK
    final_line: str = ""
    finished: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON payload: the fields, with `finished` merged in at the top."""
        payload = asdict(self)
        payload.update(payload.pop("finished"))
        return payload

    def write(self, run_dir: Path) -> Path:
        """Write summary.json atomically; returns its path."""
        path = run_dir / SUMMARY_FILE
        write_json(path, self.to_dict())
        return path


def changed_rounds(rounds: Sequence[Mapping[str, Any]], model_name: str) -> int:
    """How many of `rounds` (summary.json's) changed `model_name`'s model.

    Under privacy=central that includes a round whose draw took no client:
    its noise changed the model and was charged. A checkpoint written before
    `model_changed` was recorded knows only the updates aggregated.
    """
    return sum(
        1
        for r in rounds
        if r["model"] == model_name
        and r.get("model_changed", r["clients_aggregated"] > 0)
    )


def mark_resumed(run_dir: Path) -> None:
    """Say in an earlier start's summary.json that a resumed start is under way.

    The resumed start trains on from the checkpoint and exports the teacher
    again before its own summary is written; stopped in between, the earlier
    summary would still say "ok" with fewer rounds and a smaller epsilon than
    the checkpoint and the exported weights by then carry. Its figures are
    kept, with status "resumed": what reads a run's final statement (a sweep's
    report, `fedmodel resume`) reads it as unfinished. A summary that does not
    parse is left alone, as nothing takes it for a finished run's.
    """
    path = run_dir / SUMMARY_FILE
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(earlier, dict) and earlier.get("status") != STATUS_RESUMED:
        write_json(path, {**earlier, "status": STATUS_RESUMED})


def client_rows(
    settings: RunSettings, figures: dict[int, dict[str, float]]
) -> list[dict[str, Any]]:
    """One row per client: its latest reported figures and its ledger's charges.

    In simulation the server can read each client's ledger in the run folder:
    the row then also says what the ledger holds (`ledger_epsilon`,
    `ledger_rounds`), and a client that was charged but never reported (every
    update rejected) still gets a row. At a site only its reports reach us.
    """
    ledgers = _simulated_ledgers(settings)
    rows = []
    for client_id in sorted(set(figures) | set(ledgers)):
        row = _client_row(settings, client_id, figures.get(client_id, {}))
        row.update(ledgers.get(client_id, {}))
        rows.append(row)
    return rows


def guarantee(settings: RunSettings, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's privacy statement over every charge, used update or not.

    Under privacy=central the server's ledger counts too: it is charged for
    every round released, where no client's reply carried the charge (every
    draw empty, or a resume that ran no round after one its checkpoint missed).
    A ledger in the run folder that cannot be read leaves no epsilon stated
    (`unstated` says which), never the smaller figure the replies carried.
    """
    charged: dict[int, dict[str, float]] = {}
    for row in rows:
        figures = {EPSILON_KEY: charged_epsilon(row), DELTA_KEY: charged_delta(row)}
        charged[int(row["client_id"])] = {
            k: float(v) for k, v in figures.items() if v is not None
        }
    statement = privacy_guarantee(settings, charged)
    unread = [str(row["client_id"]) for row in rows if row.get(LEDGER_UNREADABLE)]
    if unread:
        # Its ledger may hold a charge no reply carried: stating the replies'
        # figures could state less than was spent.
        clients = f"{plural(len(unread), 'client')} {', '.join(unread)}"
        return _unstated(statement, f"the privacy ledger of {clients}")
    if settings.privacy.client_level:
        try:
            server = central_ledger_status(Path(settings.run_dir))
        except FedmodelError as exc:
            log.warning("the server's privacy ledger cannot be read: %s", exc)
            return _unstated(statement, "the server's privacy ledger")
        if server is not None:
            for key, spent in (("epsilon", server.epsilon), ("delta", server.delta)):
                statement[key] = max(statement[key] or 0.0, spent)
    return statement


def charged_epsilon(row: Mapping[str, Any]) -> float | None:
    """What a client row was charged: the largest of its reported and ledger epsilon.

    A client whose last updates were refused reported less than its ledger
    holds; a client that never reported has only its ledger's figure; a site
    whose operator reset its ledger during the run reported more before it;
    a reply refused for naming a client another node answers for (two sites
    started with one --site-id) was charged all the same.
    """
    epsilons = [
        row.get("epsilon"),
        row.get("ledger_epsilon"),
        row.get("epsilon_before_reset"),
        row.get("refused_reply_epsilon"),
    ]
    return max((float(e) for e in epsilons if e is not None), default=None)


def charged_delta(row: Mapping[str, Any]) -> float | None:
    """The delta a client row's epsilon holds at: its own, or a refused reply's.

    A reply refused for naming a client another node answers for (two sites
    started with one --site-id) may state its epsilon at a larger delta.
    """
    deltas = [row.get("delta"), row.get("refused_reply_delta")]
    return max((float(d) for d in deltas if d is not None), default=None)


def _unstated(statement: dict[str, Any], ledger: str) -> dict[str, Any]:
    """The statement without figures: `ledger`, which holds charges, is unread."""
    unstated = f"{ledger} could not be read when the run ended"
    log.warning("the run states no epsilon: %s", unstated)
    return {**statement, "epsilon": None, "delta": None, "unstated": unstated}


def _client_row(
    settings: RunSettings, client_id: int, figures: dict[str, float]
) -> dict[str, Any]:
    private = settings.privacy.enabled
    return {
        "client_id": client_id,
        "num_train_examples": int(figures.get("num-examples", 0)),
        "epsilon": figures.get(EPSILON_KEY) if private else None,
        "epsilon_before_reset": (
            figures.get(EPSILON_BEFORE_RESET_KEY) if private else None
        ),
        "refused_reply_epsilon": figures.get(REFUSED_EPSILON_KEY) if private else None,
        "refused_reply_delta": figures.get(REFUSED_DELTA_KEY) if private else None,
        "delta": figures.get(DELTA_KEY) if private else None,
        "noise_multiplier": figures.get(NOISE_MULTIPLIER_KEY) if private else None,
        "sample_rate": figures.get(SAMPLE_RATE_KEY) if private else None,
        "steps": int(figures.get(STEPS_KEY, 0)) if private else None,
        "accountant": settings.privacy.accountant if private else None,
        "budget_exhausted": bool(figures.get("budget-exhausted", 0)),
    }


def _simulated_ledgers(settings: RunSettings) -> dict[int, dict[str, Any]]:
    if settings.federation.name != SIMULATION or not settings.privacy.record_level:
        return {}
    found: dict[int, dict[str, Any]] = {}
    for client_id in range(settings.num_clients):
        state_dir = simulated_client_dir(settings.run_dir, client_id)
        if not (state_dir / LEDGER_FILE).is_file():
            continue
        try:
            status = ledger_status(state_dir)
        except FedmodelError as exc:
            log.warning("client %d's ledger cannot be read: %s", client_id, exc)
            found[client_id] = {LEDGER_UNREADABLE: True}
            continue
        found[client_id] = {
            "delta": status.delta,
            "ledger_epsilon": status.epsilon,
            "ledger_rounds": status.rounds,
            "ledger_resets": reset_count(state_dir),
        }
    return found
