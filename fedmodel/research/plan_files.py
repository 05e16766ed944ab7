"""What a privacy plan reads of the task's files, read before torch loads.

`fedmodel privacy-plan` reads them before it imports the plan's code
(`research/privacy_plan.py`: torch, Opacus and transformers, seconds), so a
train file that is missing or does not parse, a transfer file the run cannot
use, or a label `task.label_descriptions` does not describe, is refused in
the time Python, Hydra and `datasets` take, in every privacy mode, as
`fedmodel simulate` refuses it; the plan then plans from what was read here.
A run the plan cannot plan (federation=deployment, privacy=off) is refused
first.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmodel.config import RunSettings
from fedmodel.config.modes import DEPLOYMENT
from fedmodel.data.readable_records import (
    check_described_labels,
    check_readable_transfer_file,
)
from fedmodel.data.splits import TaskData
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.privacy.modes import privacy_mode


@dataclass(frozen=True)
class PlanFiles:
    """The task's records a plan deals to its clients.

    Under client-level DP (`privacy=central`) the one plan counts clients,
    not records, but the records are dealt to the clients all the same, to
    refuse what the run refuses. `records.label_names` are the classes as
    the run will use them, in every mode; the plan also counts the texts
    `task.max_length` cuts in its splits.
    """

    records: TaskData


def read_plan_files(settings: RunSettings) -> PlanFiles:
    """Refuse a run the plan cannot plan, then read the files its plan reads.

    Only a simulation's, with privacy on: a deployment's sites plan from their
    own files and caps, which the server does not hold. Then, in every mode,
    what the run's first check reads (`check_readable_records`): the transfer
    file, the task's records as the run loads them, and the labels'
    descriptions, in every privacy mode (the plan deals them to the
    clients, `privacy_plan.plan_run`).
    """
    if settings.federation.name == DEPLOYMENT:
        raise FedmodelError(
            "privacy-plan plans simulated clients, and federation=deployment has "
            "none: each site calibrates its noise from its own data file, "
            "max-epsilon and delta, which the server does not hold. Each site's "
            "noise multiplier and epsilon reach the server with its replies "
            "(summary.json); a site reads its own spend with `fedmodel ledger "
            "show --state-dir DIR`"
        )
    mode = privacy_mode(settings.privacy)
    if not mode.enabled:
        raise FedmodelError(
            "privacy is off (privacy=off): there is no budget to plan; use "
            "privacy=dpsgd (record-level) or privacy=central (client-level)"
        )
    check_readable_transfer_file(settings)
    records = load_task(settings.task, seed=settings.seed)
    check_described_labels(settings, records)
    return PlanFiles(records=records)
