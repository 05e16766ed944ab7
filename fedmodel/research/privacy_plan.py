"""`fedmodel privacy-plan`: each client's privacy plan, without training.

For every client it loads the client's records exactly as a run would (the same
task, partition and split code), then calibrates noise as the client will
before round 1 and states the epsilon after each round (or, over many rounds,
after evenly spaced ones) under both Opacus accountants. A client whose delta
is not below 1/n, or whose target cannot be reached, is flagged instead of
planned.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from fedmodel.config import RunSettings
from fedmodel.config.delta_rule import weak_delta_warning
from fedmodel.config.wording import plural
from fedmodel.data.clients import client_records, dealt_to_clients
from fedmodel.data.file_roles import client_file
from fedmodel.data.splits import TaskData
from fedmodel.errors import FedmodelError
from fedmodel.federation.preflight import (
    check_model_and_distillation,
    warn_about_records,
    warn_weak_privacy,
)
from fedmodel.privacy.accountants import prv_takes
from fedmodel.privacy.calibration import ACCOUNTANTS, epsilon_for
from fedmodel.privacy.client_level import plan_client_level
from fedmodel.privacy.client_plan import PrivacyPlan, plan_client, planned_rounds
from fedmodel.privacy.modes import privacy_mode
from fedmodel.research.plan_files import PlanFiles, read_plan_files

log = logging.getLogger(__name__)

# The plan states epsilon after every round up to ALL_ROUNDS_UP_TO rounds, and
# after about SPACED_ROUNDS evenly spaced ones beyond: PRV takes a third of a
# second a round at 300 rounds, so every round of 300 took 6 minutes over
# 4 clients (and a table of 300 rows).
ALL_ROUNDS_UP_TO = 30
SPACED_ROUNDS = 20
# Where no line was logged for this long, the next step of a plan logs where it
# is: over 1000 rounds one client's calibration and PRV epsilons took 15 to 47 s
# on 2 shared cores, in silence, a PRV evaluation up to seconds (a Fourier
# transform of millions of points).
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class ClientPlan:
    """One client's plan, or why it has none (`problem`).

    `client` is the client's index, numbered from 0 as the tables and
    summary.json number it. For client-level DP (`privacy=central`) there is one
    row for all clients: its `client` is None, its `num_records` the number of
    clients and a "step" one round.
    """

    client: int | None
    num_records: int
    one_over_n: float
    delta: float | None = None
    sample_rate: float | None = None
    steps_per_round: int | None = None
    planned_rounds: int | None = None
    noise_multiplier: float | None = None
    # The rounds (from 1) `epsilon_by_round` states epsilon after: every round
    # up to ALL_ROUNDS_UP_TO, else evenly spaced ones (`epsilon_rounds`).
    epsilon_rounds: list[int] = field(default_factory=list)
    # Epsilon after each of those rounds, by accountant name (None: the
    # accountant failed, or PRV past PRV_MAX_STEPS, which it is not asked).
    epsilon_by_round: dict[str, list[float | None]] = field(default_factory=dict)
    problem: str | None = None
    # Why the delta is weak (above WEAK_DELTA), or None: planned all the same.
    delta_warning: str | None = None

    @property
    def label(self) -> str:
        """The client as the tables name it."""
        return "all clients" if self.client is None else str(self.client)


class PlanProgress:
    """fedmodel's progress lines while clients are planned, on stderr's log.

    `line` always logs; `note` logs only where the last line is
    PROGRESS_EVERY_S old, so a quick plan shows a line a client and a long
    one a line every few seconds, never on stdout (`--json`'s).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def line(self, message: str, *args: object) -> None:
        """Log `message` % `args`."""
        log.info(message, *args)
        self._last = self._clock()

    def note(self, message: str, *args: object) -> None:
        """Log `message` % `args` if no line was logged for PROGRESS_EVERY_S."""
        if self._clock() - self._last >= PROGRESS_EVERY_S:
            self.line(message, *args)


def plan_run(settings: RunSettings, files: PlanFiles | None = None) -> list[ClientPlan]:
    """Plan every client of a run (or the one client-level budget).

    `files`: what `read_plan_files` read, for a caller that read them before
    importing this module (`fedmodel privacy-plan`); read here when None, so
    a run the plan cannot plan (a deployment's, or one without privacy) is
    refused first either way.
    """
    if files is None:
        files = read_plan_files(settings)
    # In every mode: privacy=central's plan was shown for a model the run refuses.
    distill_texts = check_model_and_distillation(settings)
    progress = PlanProgress()
    data = files.records
    if privacy_mode(settings.privacy).server_noise:
        # Client-level DP: one plan, over the clients. Their records are dealt
        # all the same: a partition they cannot fill stops the run as it
        # deals them, and its plan was shown, exit 0.
        _client_sizes(settings, data)
        plans = [_planned(None, settings.num_clients, settings, progress=progress)]
    else:
        # The run's warnings about its records, here before anything trains:
        # the plan is where a new task's files are read first.
        warn_about_records(settings, data, distill_texts=distill_texts)
        plans = _record_level_plans(settings, data, progress=progress)
    # As the server warns before round 1, of the noise planned here.
    noise = [plan.noise_multiplier for plan in plans if plan.noise_multiplier]
    if noise:
        warn_weak_privacy(settings, sigmas=noise)
    return plans


def _record_level_plans(
    settings: RunSettings, data: TaskData, *, progress: PlanProgress
) -> list[ClientPlan]:
    """Each client's plan, for the records dealt to it."""
    plans = []
    for client_id, num_records in enumerate(_client_sizes(settings, data)):
        # A client's start (its plan takes seconds to a minute, `note`s within),
        # numbered from 0 as the tables number it, with its file if it has one.
        held = client_file(settings, client_id)
        progress.line(
            "planning client %d (%d of %d): %d records%s, %s",
            client_id,
            client_id + 1,
            settings.num_clients,
            num_records,
            f" of {held}" if held is not None else "",
            _rounds_shown(settings),
        )
        plans.append(_planned(client_id, num_records, settings, progress=progress))
    return plans


def _client_sizes(settings: RunSettings, data: TaskData) -> list[int]:
    """Each client's training records, dealt from `data` as a run deals them."""
    partitions = dealt_to_clients(
        data,
        task=settings.task,
        partition=settings.partition,
        num_clients=settings.num_clients,
        seed=settings.seed,
    )
    sizes = []
    for client_id in range(settings.num_clients):
        train, _ = client_records(
            settings,
            client_id,
            partitions=partitions,
            num_labels=len(data.label_names),
        )
        sizes.append(len(train))
    return sizes


def _rounds_shown(settings: RunSettings) -> str:
    """The rounds a client's plan covers, with the student's share where it has one."""
    rounds = planned_rounds(settings)
    shown = f"{rounds} {plural(rounds, 'round')}"
    student = settings.distill.client_rounds
    if not student:
        return shown
    return f"{shown}: {settings.num_rounds} of the teacher, {student} of the student"


def _planned(
    client: int | None,
    num_records: int,
    settings: RunSettings,
    *,
    progress: PlanProgress,
) -> ClientPlan:
    central = client is None
    who = "client-level DP" if central else f"client {client}"
    base = ClientPlan(
        client=client, num_records=num_records, one_over_n=1.0 / num_records
    )
    try:
        if central:
            plan = plan_client_level(settings)
        else:
            # The very function each client's ledger opens with.
            plan = plan_client(settings, num_records=num_records, client_id=str(client))
    except FedmodelError as exc:
        return replace(base, problem=str(exc))
    weak = weak_delta_warning(
        plan.delta,
        who=who,
        n=num_records,
        client_level=central,
    )
    if weak is not None:
        log.warning("%s", weak)
    rounds = epsilon_rounds(plan.planned_rounds, teacher_rounds=settings.num_rounds)
    progress.note(
        "%s: noise multiplier %.4f calibrated; now its epsilon after %d %s",
        who,
        plan.noise_multiplier,
        len(rounds),
        plural(len(rounds), "round"),
    )
    by_round = {
        name: _epsilons(plan, name, rounds, progress=progress, who=who)
        for name in ACCOUNTANTS
    }
    return replace(
        base,
        delta=plan.delta,
        sample_rate=plan.sample_rate,
        steps_per_round=plan.steps_per_round,
        planned_rounds=plan.planned_rounds,
        noise_multiplier=plan.noise_multiplier,
        epsilon_rounds=rounds,
        epsilon_by_round=by_round,
        delta_warning=weak,
    )


def epsilon_rounds(total: int, *, teacher_rounds: int) -> list[int]:
    """The rounds a plan of `total` rounds states epsilon after, from 1.

    Every round up to ALL_ROUNDS_UP_TO; past it every k-th round (about
    SPACED_ROUNDS of them), with round 1, the teacher's last round and the
    last round always among them.
    """
    every = round_spacing(total)
    spaced = set(range(every, total + 1, every))
    return sorted(spaced | {1, min(teacher_rounds, total), total})


def round_spacing(total: int) -> int:
    """Every how many rounds a plan of `total` rounds states epsilon."""
    return 1 if total <= ALL_ROUNDS_UP_TO else math.ceil(total / SPACED_ROUNDS)


def _epsilons(
    plan: PrivacyPlan,
    accountant: str,
    rounds: list[int],
    *,
    progress: PlanProgress,
    who: str,
) -> list[float | None]:
    """Epsilon after each of `rounds`; None where the accountant fails.

    Also None past the steps PRV may take: an RDP plan can run longer, and its
    PRV column would otherwise ask for tens of GB.
    """
    spent: list[float | None] = []
    for index, done in enumerate(rounds):
        steps = plan.steps_per_round * done
        if not prv_takes(accountant, steps):
            spent.append(None)
            continue
        progress.note(
            "%s: %s epsilon after round %d (%d of %d)",
            who,
            accountant.upper(),
            done,
            index + 1,
            len(rounds),
        )
        history = [(plan.noise_multiplier, plan.sample_rate, steps)]
        try:
            spent.append(epsilon_for(history, delta=plan.delta, accountant=accountant))
        except FedmodelError:
            spent.append(None)
    return spent
