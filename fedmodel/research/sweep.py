"""`fedmodel sweep-report SWEEP_DIR`: a sweep's runs as a CSV, a table and a plot.

A run folder is any folder under SWEEP_DIR holding `summary.json` and
`resolved_config.yaml` (what `fedmodel simulate` writes). Runs that differ only
in `seed` are one setting at one budget: their accuracies are averaged, with the
standard deviation as the spread. Runs with `num_clients=1` are the centralized
baseline; runs with `privacy=off` are drawn as reference lines.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from fedmodel.research.sweep_plot import plot_privacy_utility
from fedmodel.research.sweep_runs import LEVELS, collect_runs, setting_values
from fedmodel.run.layout import SWEEP_PLOT_FILE as PLOT_FILE

log = logging.getLogger(__name__)

RUNS_CSV = "sweep_runs.csv"
REPORT_MD = "sweep_report.md"
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


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds for each setting and budget, with the costs.

    `privacy_cost` is the accuracy lost against the non-private runs of the same
    kind and data; `federation_cost` the accuracy lost against the centralized
    runs at the same privacy level and budget.
    """
    keys = ["setting", "target_epsilon"]
    _warn_repeated_seeds(runs)
    table = (
        runs.assign(target_epsilon=runs["target_epsilon"].fillna(-1.0))
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
        )
        .reset_index()
    )
    table["target_epsilon"] = table["target_epsilon"].where(
        table["target_epsilon"] >= 0
    )
    first = runs.groupby("setting", sort=False).first()
    baseline_key = setting_values(first, BASELINE_COLUMNS).agg("|".join, axis=1)
    table["privacy_cost"] = [
        _cost(table, first, baseline_key, row, against="privacy")
        for _, row in table.iterrows()
    ]
    table["federation_cost"] = [
        _cost(table, first, baseline_key, row, against="federation")
        for _, row in table.iterrows()
    ]
    return table


def _cost(
    table: pd.DataFrame,
    first: pd.DataFrame,
    baseline_key: pd.Series,
    row: pd.Series,
    *,
    against: str,
) -> float | None:
    """Accuracy points lost against the matching reference, or None if none ran."""
    if against == "privacy":
        if row["privacy_level"] == LEVELS["off"]:
            return None
        same_data = baseline_key[baseline_key == baseline_key[row["setting"]]].index
        reference = table[
            table["setting"].isin(same_data) & (table["privacy_level"] == LEVELS["off"])
        ]
    else:
        if row["kind"] != "federated":
            return None
        centralized = first[
            (first["kind"] == "centralized")
            & (first["privacy_level"] == row["privacy_level"])
            & (first["task"] == first.loc[row["setting"], "task"])
        ].index
        reference = table[table["setting"].isin(centralized)]
        same_budget = reference["target_epsilon"].fillna(-1) == (
            -1 if pd.isna(row["target_epsilon"]) else row["target_epsilon"]
        )
        reference = reference[same_budget]
    if reference.empty:
        return None
    return float(100 * (reference["accuracy_mean"].iloc[0] - row["accuracy_mean"]))


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
            f"{_num(row['epsilon_spent_max'], '{:.3f}')} | "
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
    budget = runs["target_epsilon"].fillna(-1.0)
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


def write_report(sweep_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Write the CSV, the markdown report and the plot; return their paths."""
    runs = collect_runs(sweep_dir)
    table = aggregate(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out_dir / RUNS_CSV,
        "markdown": out_dir / REPORT_MD,
        "plot": out_dir / PLOT_FILE,
    }
    runs.to_csv(paths["csv"], index=False)
    paths["markdown"].write_text(
        f"# Privacy-utility sweep: {len(runs)} runs under {sweep_dir.name}\n\n"
        + markdown_table(table),
        encoding="utf-8",
    )
    plot_privacy_utility(runs, table, paths["plot"])
    return paths
