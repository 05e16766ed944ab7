"""`fedmodel privacy-plan`: each client's privacy plan, without training.

For every client it loads the client's records exactly as a run would (the same
task, partition and split code), then calibrates noise as the client will
before round 1 and states the epsilon after each round under both Opacus
accountants. A client whose delta is not below 1/n, or whose target cannot be
reached, is flagged instead of planned.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from rich.table import Table

from fedmodel.config import PrivacySettings, RunSettings
from fedmodel.config.delta_rule import WEAK_DELTA, weak_delta_warning
from fedmodel.config.deployment import DEPLOYMENT
from fedmodel.config.wording import plural
from fedmodel.data.clients import client_records
from fedmodel.data.file_roles import client_file
from fedmodel.data.label_warnings import warn_labels
from fedmodel.data.partition import partition_clients
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.privacy.calibration import (
    ACCOUNTANTS,
    PrivacyPlan,
    epsilon_for,
    plan_client,
    planned_rounds,
)
from fedmodel.privacy.client_level import plan_client_level
from fedmodel.privacy.modes import privacy_mode

log = logging.getLogger(__name__)


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
    # Epsilon after rounds 1..R, by accountant name (None: the accountant failed).
    epsilon_by_round: dict[str, list[float | None]] = field(default_factory=dict)
    problem: str | None = None
    # Why the delta is weak (above WEAK_DELTA), or None: planned all the same.
    delta_warning: str | None = None

    @property
    def label(self) -> str:
        """The client as the tables name it."""
        return "all clients" if self.client is None else str(self.client)


def plan_run(settings: RunSettings) -> list[ClientPlan]:
    """Plan every client of a run (or the one client-level budget).

    Only a simulation's: a deployment's sites plan from their own files and
    caps, which the server does not hold.
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
    if mode.server_noise:
        return [_planned(None, settings.num_clients, settings)]
    # The run's warnings about its labels, here before anything trains: the
    # plan is where a new task's files are read first. The clients' records
    # come from the same load, dealt as a run deals them.
    task = load_task(settings.task, seed=settings.seed)
    warn_labels(task)
    partitions = partition_clients(
        task.train,
        partition=settings.partition,
        num_clients=settings.num_clients,
        seed=settings.seed,
    )
    plans = []
    for client_id in range(settings.num_clients):
        train, _ = client_records(
            settings,
            client_id,
            partitions=partitions,
            num_labels=len(task.label_names),
        )
        # Progress: each client's calibration and per-round epsilons take
        # seconds, a minute over hundreds of rounds.
        # Numbered as the tables number it (from 0), with the file it holds
        # where the clients are a files task's files.
        held = client_file(settings, client_id)
        log.info(
            "planning client %d (%d of %d): %d records%s, %s",
            client_id,
            client_id + 1,
            settings.num_clients,
            len(train),
            f" of {held}" if held is not None else "",
            _rounds_shown(settings),
        )
        plans.append(_planned(client_id, len(train), settings))
    return plans


def _rounds_shown(settings: RunSettings) -> str:
    """The rounds a client's plan covers, with the student's share where it has one."""
    rounds = planned_rounds(settings)
    shown = f"{rounds} {plural(rounds, 'round')}"
    student = settings.distill.client_rounds
    if not student:
        return shown
    return f"{shown}: {settings.num_rounds} of the teacher, {student} of the student"


def _planned(
    client: int | None, num_records: int, settings: RunSettings
) -> ClientPlan:
    central = client is None
    base = ClientPlan(
        client=client, num_records=num_records, one_over_n=1.0 / num_records
    )
    try:
        if central:
            plan = plan_client_level(settings)
        else:
            # The very function each client's ledger opens with.
            plan = plan_client(
                settings, num_records=num_records, client_id=str(client)
            )
    except FedmodelError as exc:
        return ClientPlan(**{**asdict(base), "problem": str(exc)})
    weak = weak_delta_warning(
        plan.delta,
        who="client-level DP" if central else f"client {client}",
        n=num_records,
        client_level=central,
    )
    if weak is not None:
        log.warning("%s", weak)
    return ClientPlan(
        client=client,
        num_records=num_records,
        one_over_n=1.0 / num_records,
        delta=plan.delta,
        sample_rate=plan.sample_rate,
        steps_per_round=plan.steps_per_round,
        planned_rounds=plan.planned_rounds,
        noise_multiplier=plan.noise_multiplier,
        epsilon_by_round={name: _epsilons(plan, name) for name in ACCOUNTANTS},
        delta_warning=weak,
    )


def _epsilons(plan: PrivacyPlan, accountant: str) -> list[float | None]:
    """Epsilon after each planned round; None where the accountant fails."""
    spent: list[float | None] = []
    for done in range(1, plan.planned_rounds + 1):
        history = [
            (plan.noise_multiplier, plan.sample_rate, plan.steps_per_round * done)
        ]
        try:
            spent.append(epsilon_for(history, delta=plan.delta, accountant=accountant))
        except FedmodelError:
            spent.append(None)
    return spent


def _eps(value: float | None) -> str:
    return "failed" if value is None else f"{value:.3f}"


def plan_tables(settings: RunSettings, plans: list[ClientPlan]) -> list[Table]:
    """A table of the plans, and one of epsilon by round."""
    privacy = settings.privacy
    mode = privacy_mode(privacy)
    rounds = settings.num_rounds if mode.server_noise else planned_rounds(settings)
    overview = Table(
        title=f"{mode.guarantee}-level privacy plan: target epsilon "
        f"{privacy.target_epsilon:g}, {rounds} rounds, calibrated with "
        f"{privacy.accountant}"
    )
    unit = "clients" if mode.server_noise else "records n"
    for header in (
        "client",
        unit,
        "1/n",
        "delta",
        "sample rate",
        "steps/round",
        "noise mult.",
        *[f"final eps {name.upper()}{_charged(name, privacy)}" for name in ACCOUNTANTS],
        "status",
    ):
        overview.add_column(header, justify="left" if header == "status" else "right")
    for plan in plans:
        if plan.problem:
            overview.add_row(
                plan.label,
                str(plan.num_records),
                f"{plan.one_over_n:.3g}",
                *["-"] * 6,
                f"[red]FLAGGED: {plan.problem}[/red]",
            )
            continue
        overview.add_row(
            plan.label,
            str(plan.num_records),
            f"{plan.one_over_n:.3g}",
            f"{plan.delta:.3g}",
            f"{plan.sample_rate:.4g}",
            str(plan.steps_per_round),
            f"{plan.noise_multiplier:.4f}",
            *[_eps(plan.epsilon_by_round[name][-1]) for name in ACCOUNTANTS],
            _status(plan, settings.finetune.batch_size, client_level=mode.server_noise),
        )
    if any(_unsampled(plan, client_level=mode.server_noise) for plan in plans):
        overview.caption = (
            "* every step takes all n records: sample rate 1, no amplification "
            "by subsampling"
        )
    return [
        overview,
        _by_round_table(plans, rounds=rounds, teacher_rounds=settings.num_rounds),
    ]


def _unsampled(plan: ClientPlan, *, client_level: bool) -> bool:
    """Whether a client holds no more records than one expected batch."""
    return not client_level and not plan.problem and plan.sample_rate == 1.0


def _status(plan: ClientPlan, batch_size: int, *, client_level: bool) -> str:
    """"ok", marked where a client is too small to be subsampled or its delta weak."""
    marks = ["[green]ok[/green]"]
    if _unsampled(plan, client_level=client_level):
        marks.append(f"n <= batch {batch_size} *")
    if plan.delta_warning is not None:
        marks.append(f"[yellow]delta > {WEAK_DELTA:g}[/yellow]")
    return ", ".join(marks)


def _charged(accountant: str, privacy: PrivacySettings) -> str:
    """Marks the column of the accountant the clients charge their budget with."""
    return " (charged)" if accountant == privacy.accountant else ""


def _by_round_table(
    plans: list[ClientPlan], *, rounds: int, teacher_rounds: int
) -> Table:
    """Epsilon after each round; rounds past the teacher's are the student's."""
    names = " / ".join(name.upper() for name in ACCOUNTANTS)
    title = f"epsilon after each round ({names})"
    # A title wraps at its table's width: one column (privacy=central) is
    # narrower than the title.
    by_round = Table(title=title, min_width=len(title))
    by_round.add_column("round", justify="right")
    planned = [plan for plan in plans if not plan.problem]
    for plan in planned:
        header = plan.label if plan.client is None else f"client {plan.client}"
        by_round.add_column(header, justify="right")
    for index in range(rounds):
        by_round.add_row(
            f"{index + 1}{' (student)' if index >= teacher_rounds else ''}",
            *[
                " / ".join(_eps(p.epsilon_by_round[n][index]) for n in ACCOUNTANTS)
                for p in planned
            ],
        )
    return by_round
