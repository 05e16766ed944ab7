"""What a privacy plan reads of the task's files, read before torch loads.

`fedmodel privacy-plan` reads them before it imports the plan's code
(`research/privacy_plan.py`: torch, Opacus and transformers, seconds), so a
train file that is missing or does not parse, or a transfer file the run
cannot use, is refused in the time Python, Hydra and `datasets` take; the
plan then plans from what was read here. A run the plan cannot plan
(federation=deployment, privacy=off) is refused first.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmodel.config import RunSettings
from fedmodel.config.modes import DEPLOYMENT
from fedmodel.data.readable_records import check_readable_transfer_file
from fedmodel.data.splits import TaskData
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.privacy.modes import privacy_mode


@dataclass(frozen=True)
class PlanFiles:
    """The task's records a plan deals to its clients.

    `records` is None under client-level DP (`privacy=central`): its one plan
    counts clients, not records, and reads no client's file.
    """

    records: TaskData | None


def read_plan_files(settings: RunSettings) -> PlanFiles:
    """Refuse a run the plan cannot plan, then read the files its plan reads.

    Only a simulation's, with privacy on: a deployment's sites plan from their
    own files and caps, which the server does not hold. Then the transfer
    file, in every mode, as the run's checks read it
    (`check_readable_transfer_file`), and the task's records as the run loads
    them, where each client plans from its own.
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
    if mode.server_noise:
        return PlanFiles(records=None)
    return PlanFiles(records=load_task(settings.task, seed=settings.seed))
