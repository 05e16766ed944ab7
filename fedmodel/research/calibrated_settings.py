"""The training settings a privacy plan is calibrated for, and where each came from.

`fedmodel privacy-plan` shows them above the clients' plans (and under
`training_settings` in its JSON): the budget rule fills some, the config sets
the others, and a run keeps them all on resume.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from fedmodel.config import RunSettings

SOURCES = {"budget": "from the budget", "set": "set"}
# Per-example clipping's keys, read by privacy=dpsgd alone. The budget rule
# fills grad_sample_mode in every mode (resolved configs hold it, and resuming
# compares them), so the plan leaves these rows out where no example is clipped.
CLIPPING_KEYS = ("privacy.max_grad_norm", "privacy.grad_sample_mode")


@dataclass(frozen=True)
class CalibratedSetting:
    """A setting the plan is calibrated for: its value and where it came from.

    `source` is "budget" where the budget rule filled it (null in the YAML),
    "set" where the config gave it; `note` says what else applies to it.
    """

    value: float | bool | str | None
    source: str
    note: str | None = None


def training_settings(settings: RunSettings) -> dict[str, CalibratedSetting]:
    """The budget-dependent settings the plan was calibrated with, and their source.

    A key the budget rule filled (null in the YAML) is listed in the settings'
    `budget_rule_keys`, the list the server sends every client. The clipping
    keys are shown under privacy=dpsgd only: no other mode clips an example.
    """
    student_rounds = settings.distill.client_rounds
    values: dict[str, float | bool | str | None] = {
        "finetune.learning_rate": settings.finetune.learning_rate,
        "finetune.batch_size": settings.finetune.batch_size,
        "finetune.local_epochs": settings.finetune.local_epochs,
        "finetune.train_head_bias": settings.finetune.train_head_bias,
        "num_rounds": settings.num_rounds,
        "privacy.max_grad_norm": settings.privacy.max_grad_norm,
        "privacy.grad_sample_mode": settings.privacy.grad_sample_mode,
    }
    if not settings.privacy.record_level:
        for key in CLIPPING_KEYS:
            del values[key]
    if student_rounds:  # federated distillation's rounds are planned too
        values["distill.rounds"] = student_rounds
    shown = {
        key: CalibratedSetting(
            value, "budget" if key in settings.budget_rule_keys else "set"
        )
        for key, value in values.items()
    }
    if student_rounds and settings.privacy.record_level:
        # Their loss is the teacher's outputs: Opacus' hooks clip.
        mode = shown["privacy.grad_sample_mode"]
        shown["privacy.grad_sample_mode"] = CalibratedSetting(
            mode.value, mode.source, "student rounds: hooks"
        )
    if student_rounds:
        # The student's layers train with AdamW at distillation's rate
        # (client/jobs.py), not at the head's.
        rate = shown["finetune.learning_rate"]
        shown["finetune.learning_rate"] = CalibratedSetting(
            rate.value,
            rate.source,
            f"student rounds: {settings.distill.learning_rate:g} (AdamW, "
            "distill.learning_rate)",
        )
    return shown


def _shown(value: float | bool | str) -> str:
    if isinstance(value, str):
        return value
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


def settings_table(shown: dict[str, CalibratedSetting]) -> Table:
    """The budget-dependent settings as a table, each with its source."""
    table = Table(title="training settings the plan is calibrated for")
    table.add_column("setting")
    table.add_column("value (source)")
    for key, setting in shown.items():
        if setting.value is None:
            table.add_row(key, "-")
            continue
        note = f"; {setting.note}" if setting.note else ""
        table.add_row(key, f"{_shown(setting.value)} ({SOURCES[setting.source]}){note}")
    return table
