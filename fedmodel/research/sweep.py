"""A sweep's table: each setting's accuracy and its privacy and federation costs.

Runs that differ only in `seed` are one setting at one budget: their
accuracies are averaged, with the standard deviation as the spread. Runs with
`num_clients=1` are the centralized baseline; runs with `privacy=off` are the
non-private references.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from fedmodel.config.wording import decimals_up
from fedmodel.research.sweep_runs import (
    LEVELS,
    NO_BUDGET,
    budget_keys,
    setting_values,
)

log = logging.getLogger(__name__)

# Settings a non-private baseline must share with a private run to be its reference.
BASELINE_COLUMNS = [
    "kind",
    "task",
    "num_clients",
    "partition",
    "finetune",
    "num_rounds",
    "local_epochs",
]
# Matched apart from the other keys when references are chosen.
BUDGET_KEY = "privacy.target_epsilon"
# Each cost's reference runs.
REFERENCE_KINDS = {"privacy": "non-private", "federation": "centralized"}


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds for each setting and budget, with the costs.

    `privacy_cost` is the accuracy lost against the non-private runs of the same
    kind and data; `federation_cost` the accuracy lost against the centralized
    runs at the same privacy level and budget.
    """
    keys = ["setting", "target_epsilon"]
    _warn_repeated_seeds(runs)
    table = (
        runs.assign(target_epsilon=budget_keys(runs["target_epsilon"]))
        .groupby(keys, sort=False)
        .agg(
            kind=("kind", "first"),
            privacy_level=("privacy_level", "first"),
            seeds=("seed", "nunique"),
            runs=("run", "count"),
            accuracy_mean=("final_accuracy", "mean"),
            accuracy_std=("final_accuracy", "std"),
            accuracy_min=("final_accuracy", "min"),
            accuracy_max=("final_accuracy", "max"),
            macro_f1_mean=("final_macro_f1", "mean"),
            epsilon_spent_max=("epsilon_spent", "max"),
            minutes_mean=("wall_seconds", lambda s: s.mean() / 60),
            config=("config", "first"),
        )
        .reset_index()
    )
    table["target_epsilon"] = table["target_epsilon"].where(
        table["target_epsilon"] != NO_BUDGET
    )
    first = runs.groupby("setting", sort=False).first()
    baseline_key = setting_values(first, BASELINE_COLUMNS).agg("|".join, axis=1)
    for against in REFERENCE_KINDS:
        found = [
            _cost(table, first, baseline_key, row, against=against)
            for _, row in table.iterrows()
        ]
        table[f"{against}_cost"] = [cost for cost, _ in found]
        table[f"{against}_note"] = [note for _, note in found]
    for line in reference_notes(table):
        log.warning("%s", line)
    return table


def _cost(
    table: pd.DataFrame,
    first: pd.DataFrame,
    baseline_key: pd.Series,
    row: pd.Series,
    *,
    against: str,
) -> tuple[float | None, str | None]:
    """Accuracy points lost against the row's reference, or None and why not.

    The reason is None when no reference ran, and names the candidates when
    several could serve and none could be chosen.
    """
    candidates = _candidates(table, first, baseline_key, row, against)
    chosen, unchosen = _reference(row, candidates)
    if chosen is not None:
        reference = table.loc[chosen, "accuracy_mean"]
        return float(100 * (reference - row["accuracy_mean"])), None
    if not unchosen:
        return None, None
    eps = row["target_epsilon"]
    budget = "without privacy" if pd.isna(eps) else f"at target epsilon {eps:g}"
    keys = _differing_keys(list(candidates["config"]))
    return None, (
        f"no {against} cost for '{row['setting']}' {budget}: {len(unchosen)} "
        f"{REFERENCE_KINDS[against]} settings could be its reference and not one "
        f"alone agrees with it on the config keys they differ in ({', '.join(keys)})"
        f": {'; '.join(unchosen)}"
    )


def _candidates(
    table: pd.DataFrame,
    first: pd.DataFrame,
    baseline_key: pd.Series,
    row: pd.Series,
    against: str,
) -> pd.DataFrame:
    """The rows of `table` a row's privacy or federation cost may be taken against.

    Privacy: the non-private runs of the same kind and data. Federation: the
    centralized runs of the task at the same privacy level and budget, none
    for client-level DP: one client's client-level DP hides the whole
    training set, a stronger guarantee than among several clients
    (`sweep_gaps.unmatched_federated_notes` says so under the table).
    """
    if against == "privacy":
        if row["privacy_level"] == LEVELS["off"]:
            return table.iloc[:0]
        same_data = baseline_key[baseline_key == baseline_key[row["setting"]]].index
        return table[
            table["setting"].isin(same_data) & (table["privacy_level"] == LEVELS["off"])
        ]
    if row["kind"] != "federated" or row["privacy_level"] == LEVELS["central"]:
        return table.iloc[:0]
    centralized = first[
        (first["kind"] == "centralized")
        & (first["privacy_level"] == row["privacy_level"])
        & (first["task"] == first.loc[row["setting"], "task"])
    ].index
    reference = table[table["setting"].isin(centralized)]
    same_budget = budget_keys(reference["target_epsilon"]) == (
        NO_BUDGET if pd.isna(row["target_epsilon"]) else row["target_epsilon"]
    )
    return reference[same_budget]


def _reference(row: pd.Series, candidates: pd.DataFrame) -> tuple[Any, list[str]]:
    """The candidate row to measure `row` against, else None and the candidates.

    One candidate is the reference. Of several, the reference is the one that
    agrees with `row`'s setting on every config key the candidates differ in
    (LoRA against LoRA, a learning rate against the same); if none or several
    do, there is no reference rather than whichever came first, and the
    candidates' settings are returned to be named.
    """
    if len(candidates) <= 1:
        return (candidates.index[0] if len(candidates) else None), []
    configs = list(candidates["config"])
    ours = row["config"]
    differ = _differing_keys(configs)
    agree = np.array([all(c.get(k) == ours.get(k) for k in differ) for c in configs])
    if agree.sum() == 1:
        return candidates.index[agree][0], []
    return None, list(candidates["setting"])


def _differing_keys(configs: list[dict[str, str]]) -> list[str]:
    """The config keys whose values are not the same in all `configs`.

    Not the budget: a cost's candidates are chosen at the row's budget, or
    are non-private.
    """
    every = sorted({key for config in configs for key in config} - {BUDGET_KEY})
    return [key for key in every if len({c.get(key) for c in configs}) > 1]


def reference_notes(table: pd.DataFrame) -> list[str]:
    """One line for each cost left out because no one reference could be chosen.

    A row without a note holds None, or NaN where pandas made the column text.
    """
    return [
        note
        for against in REFERENCE_KINDS
        for note in table[f"{against}_note"]
        if isinstance(note, str)
    ]


def markdown_table(table: pd.DataFrame) -> str:
    """The aggregated table in markdown, one line per setting and budget."""
    header = (
        "| setting | target eps | seeds | accuracy mean ± std | min-max | macro-F1 | "
        "max eps spent | privacy cost (pts) | federation cost (pts) | minutes |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for _, row in table.iterrows():
        std = row["accuracy_std"]
        spread = "" if pd.isna(std) else f" ± {std:.4f}"
        lines.append(
            f"| {row['setting']} | {_num(row['target_epsilon'], '{:g}')} | "
            f"{_seeds(row)} | {row['accuracy_mean']:.4f}{spread} | "
            f"{row['accuracy_min']:.4f}-{row['accuracy_max']:.4f} | "
            f"{row['macro_f1_mean']:.4f} | "
            f"{_spent(row['epsilon_spent_max'])} | "
            f"{_num(row['privacy_cost'], '{:.1f}')} | "
            f"{_num(row['federation_cost'], '{:.1f}')} | {row['minutes_mean']:.1f} |"
        )
    return header + "\n".join(lines) + "\n"


def _seeds(row: pd.Series) -> str:
    """The seeds averaged, and the runs where a seed ran more than once."""
    if row["runs"] == row["seeds"]:
        return str(row["seeds"])
    return f"{row['seeds']} ({row['runs']} runs)"


def _warn_repeated_seeds(runs: pd.DataFrame) -> None:
    """Name the runs of one setting, budget and seed found more than once."""
    budget = budget_keys(runs["target_epsilon"])
    repeated = runs[runs.assign(b=budget).duplicated(["setting", "b", "seed"], False)]
    if not repeated.empty:
        log.warning(
            "%d runs repeat a seed of their setting and budget, and are averaged "
            "as separate runs: %s",
            len(repeated),
            ", ".join(repeated["run"].head(6)),
        )


def _num(value: Any, spec: str) -> str:
    return "-" if value is None or pd.isna(value) else spec.format(value)


def _spent(epsilon: Any) -> str:
    """An epsilon spent, rounded up: the table states no less than was spent."""
    return "-" if epsilon is None or pd.isna(epsilon) else decimals_up(epsilon, 3)
