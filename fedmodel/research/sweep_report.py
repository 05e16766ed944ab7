"""`fedmodel sweep-report SWEEP_DIR`: a sweep's runs as a CSV, a table and a plot.

A run folder is any folder under SWEEP_DIR holding `summary.json` and
`resolved_config.yaml` (what `fedmodel simulate` writes). The table's and the
plot's modules (pandas, matplotlib: most of a second on 2 cores) are imported
once there are runs to report, so a refusal (an --out that cannot be written,
no such folder, no finished run) answers without them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fedmodel.config.wording import plural
from fedmodel.research.sweep_manifest import jobs_without_result
from fedmodel.research.sweep_runs import check_sweep_folder, collect_runs
from fedmodel.run.folder_check import check_writable_folder
from fedmodel.run.layout import SWEEP_PLOT_FILE as PLOT_FILE

log = logging.getLogger(__name__)

RUNS_CSV = "sweep_runs.csv"
REPORT_MD = "sweep_report.md"


def write_report(sweep_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Write the CSV, the markdown report and the plot; return their paths."""
    # First: without --out, `out_dir` is `sweep_dir`, and a file given as the
    # sweep folder was refused as --out's, an option never given.
    check_sweep_folder(sweep_dir)
    check_writable_folder(
        out_dir, key="--out", what="the report folder", example="reports/my-sweep"
    )
    runs = collect_runs(sweep_dir)
    from fedmodel.research.sweep import aggregate, markdown_table, reference_notes
    from fedmodel.research.sweep_gaps import cost_gap_notes
    from fedmodel.research.sweep_plot import plot_privacy_utility

    missing = jobs_without_result(sweep_dir, {sweep_dir / run for run in runs["run"]})
    for line in missing:
        log.warning("%s", line)
    table = aggregate(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out_dir / RUNS_CSV,
        "markdown": out_dir / REPORT_MD,
        "plot": out_dir / PLOT_FILE,
    }
    runs.drop(columns="config").to_csv(paths["csv"], index=False)
    notes = [*missing, *reference_notes(table), *cost_gap_notes(table, runs)]
    paths["markdown"].write_text(
        f"# Privacy-utility sweep: {len(runs)} {plural(len(runs), 'run')} under "
        f"{sweep_dir.resolve().name}\n\n"
        + markdown_table(table)
        + "".join(f"\n- {line}" for line in notes)
        + ("\n" if notes else ""),
        encoding="utf-8",
    )
    plot_privacy_utility(runs, table, paths["plot"])
    return paths
