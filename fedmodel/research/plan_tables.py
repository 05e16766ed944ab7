"""What `fedmodel privacy-plan` prints of the task's labels and the clients' plans.

The task's labels (`labels_line`, and `labels_json` for `--json`), then the
clients' plans and their epsilon after each round (`plan_tables`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from fedmodel.config import PrivacySettings, RunSettings
from fedmodel.config.delta_rule import WEAK_DELTA
from fedmodel.config.wording import decimals_up, plural, three_digits_up
from fedmodel.privacy.accountants import PRV_MAX_STEPS, prv_takes
from fedmodel.privacy.calibration import ACCOUNTANTS
from fedmodel.privacy.client_plan import planned_rounds
from fedmodel.privacy.modes import privacy_mode
from fedmodel.research.privacy_plan import (
    ALL_ROUNDS_UP_TO,
    ClientPlan,
    round_spacing,
)

# A PRV epsilon past PRV's step limit, which is not evaluated (RDP plans on).
OVER_LIMIT = "over limit"
_OVER_LIMIT_NOTE = (
    f"{OVER_LIMIT}: PRV is not evaluated past its {PRV_MAX_STEPS} steps "
    "(PRV_MAX_STEPS), its memory and time growing with the steps; the plan is "
    "charged with RDP (privacy.accountant=rdp), which has no such limit. For "
    "PRV's figure there, lower num_rounds or finetune.local_epochs, or raise "
    "finetune.batch_size"
)


# How many labels the plan's line names; `--json` lists them all.
LABELS_SHOWN = 10


def labels_line(label_names: Sequence[str]) -> str:
    """The task's labels as the run will use them: how many, and the first ten.

    Public, as the task's label set is (docs/privacy.md), and no client's
    count of a label, which is computed from its records. Each is quoted as
    JSON quotes it, so a header read as a label (`"Label"`), a code read as
    a number (`"3.0"`), a stray space or a line break shows.
    """
    quoted = [json.dumps(name, ensure_ascii=False) for name in label_names]
    more = len(quoted) - LABELS_SHOWN
    classes = f"{len(quoted)} {plural(len(quoted), 'class', 'classes')}"
    listed = ", ".join(quoted[:LABELS_SHOWN]) + (
        f" and {more} more" if more > 0 else ""
    )
    return f"task labels ({classes}): {listed}"


def labels_json(label_names: Sequence[str]) -> dict[str, Any]:
    """The task's labels as `--json` gives them: how many, and all of them."""
    return {"count": len(label_names), "names": list(label_names)}


def _eps(plan: ClientPlan, accountant: str, index: int) -> str:
    """Epsilon after the `index`-th stated round, or why there is none."""
    value = plan.epsilon_by_round[accountant][index]
    if value is not None:
        return decimals_up(value, 3)  # what the run will spend: never less
    assert plan.steps_per_round is not None  # a planned client's
    steps = plan.steps_per_round * plan.epsilon_rounds[index]
    return "failed" if prv_takes(accountant, steps) else OVER_LIMIT


def _past_prv_limit(plan: ClientPlan) -> bool:
    """Whether a plan's last round is past PRV's step limit (its PRV cells are)."""
    if plan.problem or plan.steps_per_round is None:
        return False
    return not prv_takes("prv", plan.steps_per_round * plan.epsilon_rounds[-1])


def plan_tables(settings: RunSettings, plans: list[ClientPlan]) -> list[Table]:
    """A table of the plans, and one of epsilon by round."""
    privacy = settings.privacy
    mode = privacy_mode(privacy)
    rounds = settings.num_rounds if mode.server_noise else planned_rounds(settings)
    overview = Table(
        title=f"{mode.guarantee}-level privacy plan: target epsilon "
        f"{privacy.target_epsilon:g}, {rounds} {plural(rounds, 'round')}, "
        f"calibrated with {privacy.accountant}"
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
        assert plan.delta is not None  # every plan without a problem has one
        overview.add_row(
            plan.label,
            str(plan.num_records),
            f"{plan.one_over_n:.3g}",
            three_digits_up(plan.delta),
            f"{plan.sample_rate:.4g}",
            str(plan.steps_per_round),
            f"{plan.noise_multiplier:.4f}",
            *[_eps(plan, name, -1) for name in ACCOUNTANTS],
            _status(plan, settings.finetune.batch_size, client_level=mode.server_noise),
        )
    notes = []
    if any(_unsampled(plan, client_level=mode.server_noise) for plan in plans):
        notes.append(
            "* every step takes all n records: sample rate 1, no amplification "
            "by subsampling"
        )
    if any(_past_prv_limit(plan) for plan in plans):
        notes.append(_OVER_LIMIT_NOTE)
    overview.caption = "\n".join(notes) or None
    if all(plan.problem for plan in plans):  # no client has rounds to show
        return [overview]
    return [
        overview,
        _by_round_table(plans, rounds=rounds, teacher_rounds=settings.num_rounds),
    ]


def _unsampled(plan: ClientPlan, *, client_level: bool) -> bool:
    """Whether a client holds no more records than one expected batch."""
    return not client_level and not plan.problem and plan.sample_rate == 1.0


def _status(plan: ClientPlan, batch_size: int, *, client_level: bool) -> str:
    """Status "ok", marked where a client is unsampled or its delta weak."""
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
    """Epsilon by round; rounds past the teacher's are the student's.

    Every round, or evenly spaced ones over many rounds (`epsilon_rounds`):
    the title says which.
    """
    planned = [plan for plan in plans if not plan.problem]
    shown = planned[0].epsilon_rounds if planned else []
    names = " / ".join(name.upper() for name in ACCOUNTANTS)
    every = round_spacing(rounds)
    which = "after each round" if every == 1 else f"every {every} rounds of {rounds}"
    title = f"epsilon {which} ({names})"
    # A title wraps at its table's width: one column (privacy=central) is
    # narrower than the title.
    by_round = Table(title=title, min_width=len(title))
    if every > 1:
        by_round.caption = (
            f"past {ALL_ROUNDS_UP_TO} rounds, a row every {every} rounds, with "
            "round 1 and the last; every round is charged all the same"
        )
    by_round.add_column("round", justify="right")
    for plan in planned:
        header = plan.label if plan.client is None else f"client {plan.client}"
        by_round.add_column(header, justify="right")
    for index, done in enumerate(shown):
        by_round.add_row(
            f"{done}{' (student)' if done > teacher_rounds else ''}",
            *[" / ".join(_eps(p, n, index) for n in ACCOUNTANTS) for p in planned],
        )
    return by_round
