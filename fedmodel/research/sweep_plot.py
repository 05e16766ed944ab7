"""privacy_utility.png: accuracy against epsilon, one line per setting of a sweep."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from fedmodel.research.sweep_runs import LEVELS  # noqa: E402

BASELINE_STYLES = {"federated": "--", "centralized": ":"}


def plot_privacy_utility(runs: pd.DataFrame, table: pd.DataFrame, path: Path) -> Path:
    """Draw mean accuracy (bars: one std over seeds; dots: each run) by budget.

    Private settings are lines over their target epsilons; non-private settings
    are horizontal reference lines with a band of one std.
    """
    figure, axis = plt.subplots(figsize=(8, 5))
    private = table[table["privacy_level"] != LEVELS["off"]]
    for index, (setting, rows) in enumerate(private.groupby("setting", sort=False)):
        rows = rows.sort_values("target_epsilon")
        color = f"C{index}"
        axis.errorbar(
            rows["target_epsilon"],
            rows["accuracy_mean"],
            yerr=rows["accuracy_std"].fillna(0.0),
            fmt="o-",
            capsize=4,
            color=color,
            label=setting,
        )
        each = runs[runs["setting"] == setting]
        axis.scatter(
            each["target_epsilon"], each["final_accuracy"], s=12, color=color, alpha=0.4
        )
    baselines = table[table["privacy_level"] == LEVELS["off"]]
    for index, (_, row) in enumerate(baselines.iterrows()):
        color = f"C{len(private['setting'].unique()) + index}"
        std = 0.0 if pd.isna(row["accuracy_std"]) else row["accuracy_std"]
        axis.axhline(
            row["accuracy_mean"],
            linestyle=BASELINE_STYLES.get(row["kind"], "-."),
            color=color,
            label=f"{row['setting']} ({row['accuracy_mean']:.3f})",
        )
        axis.axhspan(
            row["accuracy_mean"] - std,
            row["accuracy_mean"] + std,
            color=color,
            alpha=0.1,
        )
    epsilons = sorted(private["target_epsilon"].dropna().unique())
    if epsilons:
        axis.set_xscale("log")
        axis.set_xticks(epsilons)
        axis.set_xticklabels([f"{e:g}" for e in epsilons])
        axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("target epsilon (log scale; per client, or client-level)")
    axis.set_ylabel("final server test accuracy")
    axis.set_title("accuracy vs privacy budget (mean ± std over seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
