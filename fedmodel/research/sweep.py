"""`fedmodel sweep-report SWEEP_DIR`: a sweep's runs as a CSV, a table and a plot.

A run folder is any folder under SWEEP_DIR holding `summary.json` and
`resolved_config.yaml` (what `fedmodel simulate` writes). Runs that differ only
in `seed` are one setting at one budget: their accuracies are averaged, with the
standard deviation as the spread. Runs with `num_clients=1` are the centralized
baseline; runs with `privacy=off` are drawn as reference lines.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_plot import plot_privacy_utility
from fedmodel.run.layout import RESOLVED_CONFIG, SUMMARY_FILE
from fedmodel.run.layout import SWEEP_PLOT_FILE as PLOT_FILE

log = logging.getLogger(__name__)

RUNS_CSV = "sweep_runs.csv"
REPORT_MD = "sweep_report.md"
LEVELS = {
    "off": "non-private",
    "dpsgd": "record-level DP",
    "central": "client-level DP",
}
# What makes runs one "setting" (a line in the plot); seed and budget are not.
SETTING_COLUMNS = [
    "kind",
    "privacy_level",
    "task",
    "num_clients",
    "partition",
    "finetune",
    "num_rounds",
    "local_epochs",
    "max_grad_norm",
    "accountant",
    "target_delta",
]
CLIENT_COLUMNS = ("num_clients", "partition")
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


def find_runs(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """Return (finished, unfinished) run folders under `sweep_dir`.

    Unfinished ones hold a resolved config but no summary (a run that failed
    or is still going).
    """
    if not sweep_dir.exists():
        raise FedmodelError(f"sweep folder {sweep_dir} does not exist")
    if not sweep_dir.is_dir():
        raise FedmodelError(f"{sweep_dir} is a file, not a sweep folder")
    started = sorted(p.parent for p in sweep_dir.rglob(RESOLVED_CONFIG))
    finished = [run for run in started if (run / SUMMARY_FILE).is_file()]
    unfinished = [run for run in started if run not in finished]
    if not finished:
        raise FedmodelError(
            f"{sweep_dir} holds no finished run folder (one with {SUMMARY_FILE} and "
            f"{RESOLVED_CONFIG}): give the folder a `fedmodel simulate --multirun` "
            "wrote (its hydra.sweep.dir), or a folder of such folders"
        )
    return finished, unfinished


def run_row(run_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    """One run's settings and results, flat."""
    config = _read(run_dir / RESOLVED_CONFIG, yaml.safe_load)
    summary = _read(run_dir / SUMMARY_FILE, json.loads)
    try:
        privacy = config["privacy"]
        partition = config["partition"]
        num_clients = int(config["num_clients"])
        guarantee = summary.get("privacy_guarantee") or {}
        epsilons = [c["epsilon"] for c in summary["clients"] if c.get("epsilon")]
        alpha = (
            f" alpha={partition['alpha']:g}" if partition["name"] == "dirichlet" else ""
        )
        return {
            "run": str(run_dir.relative_to(sweep_dir)),
            "kind": "centralized" if num_clients == 1 else "federated",
            "privacy_level": LEVELS.get(privacy["mode"], privacy["mode"]),
            "task": config["task"]["name"],
            "num_clients": num_clients,
            "partition": partition["name"] + ("" if num_clients == 1 else alpha),
            "finetune": config["finetune"]["mode"],
            "num_rounds": int(config["num_rounds"]),
            "local_epochs": int(config["finetune"]["local_epochs"]),
            "max_grad_norm": privacy.get("max_grad_norm"),
            "accountant": privacy["accountant"] if privacy["mode"] != "off" else None,
            "target_delta": privacy.get("target_delta"),
            "target_epsilon": privacy.get("target_epsilon")
            if privacy["mode"] != "off"
            else None,
            "seed": int(config["seed"]),
            "final_accuracy": float(summary["final_accuracy"]),
            "final_macro_f1": float(summary["final_macro_f1"]),
            "epsilon_spent": guarantee.get("epsilon")
            or (max(epsilons) if epsilons else None),
            "rounds_completed": int(summary["rounds_completed"]),
            "wall_seconds": float(summary["wall_seconds"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise FedmodelError(
            f"run folder {run_dir}: {SUMMARY_FILE} or {RESOLVED_CONFIG} lacks what a "
            f"fedmodel run writes ({type(exc).__name__}: {exc}); rerun it or move "
            "it out of the sweep folder"
        ) from exc


def _read(path: Path, parse: Any) -> dict[str, Any]:
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise FedmodelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise FedmodelError(f"{path} does not hold a mapping")
    return value


def collect_runs(sweep_dir: Path) -> pd.DataFrame:
    """Every finished run under `sweep_dir`, one row each, with a setting label."""
    finished, unfinished = find_runs(sweep_dir)
    for run in unfinished:
        log.warning(
            "skipping %s: it has no %s (failed or unfinished)", run, SUMMARY_FILE
        )
    runs = pd.DataFrame([run_row(run, sweep_dir) for run in finished])
    runs.insert(1, "setting", _labels(runs))
    return runs


def _labels(runs: pd.DataFrame) -> list[str]:
    """Name each setting by its kind and privacy, plus whatever varies in the sweep.

    Centralized runs are one client holding everything, so the client count
    and partition are left out of their names.
    """
    federated = runs[runs["kind"] == "federated"]
    pool = federated if len(federated) else runs
    varying = [
        column
        for column in SETTING_COLUMNS[2:]
        if pool[column].astype(str).nunique() > 1
    ]
    labels = []
    for _, row in runs.iterrows():
        extra = [
            f"{column}={row[column]}"
            for column in varying
            if row["kind"] == "federated" or column not in CLIENT_COLUMNS
        ]
        labels.append(", ".join([row["kind"], row["privacy_level"], *extra]))
    return labels


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds for each setting and budget, with the costs.

    `privacy_cost` is the accuracy lost against the non-private runs of the same
    kind and data; `federation_cost` the accuracy lost against the centralized
    runs at the same privacy level and budget.
    """
    keys = ["setting", "target_epsilon"]
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
    baseline_key = first[BASELINE_COLUMNS].astype(str).agg("|".join, axis=1)
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
            f"{row['seeds']} | {row['accuracy_mean']:.4f}{spread} | "
            f"{row['accuracy_min']:.4f}-{row['accuracy_max']:.4f} | "
            f"{row['macro_f1_mean']:.4f} | "
            f"{_num(row['epsilon_spent_max'], '{:.3f}')} | "
            f"{_num(row['privacy_cost'], '{:.1f}')} | "
            f"{_num(row['federation_cost'], '{:.1f}')} | {row['minutes_mean']:.1f} |"
        )
    return header + "\n".join(lines) + "\n"


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
