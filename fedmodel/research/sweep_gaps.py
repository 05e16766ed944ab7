"""Lines under a sweep's table saying why a cost is `-`, and how to get it.

A privacy cost needs a `privacy=off` run of the row's kind and data (the
`BASELINE_COLUMNS` it is matched on), a federation cost a centralized run
(`num_clients=1`) of the row's task at its privacy level and budget. Where the
sweep holds none, the column's `-` would say nothing of why; these lines go
under the table (the markdown and stdout), never into the CSV. The runs each
line asks for go into a new folder under the sweep's: a folder whose job
folders hold runs is refused (`check_run_folder`), and the report reads every
run under the sweep's folder.
"""

from __future__ import annotations

import pandas as pd

from fedmodel.config.wording import plural
from fedmodel.research.sweep import BASELINE_COLUMNS
from fedmodel.research.sweep_runs import LEVELS, budget_keys, setting_values

# What each cost is measured against, as the lines say it.
_PRIVACY_COST = (
    "it is the accuracy lost against a non-private run of the same kind and data"
)
_FEDERATION_COST = (
    "it is the accuracy lost against a centralized run (one client holding every "
    "training record) of the same task at the same privacy level and budget"
)

# Where the runs a line asks for go, and what to do then.
_NEW_FOLDER = (
    "into a new folder under the sweep's (`fedmodel simulate --multirun "
    "OVERRIDES {added} hydra.sweep.dir=SWEEP_DIR/NEW`), then report SWEEP_DIR again"
)


def cost_gap_notes(table: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Every line this module gives for `aggregate(runs)`, privacy cost first."""
    return [
        *no_baseline_notes(table),
        *unmatched_notes(table, runs),
        *no_centralized_notes(table),
        *unmatched_federated_notes(table, runs),
    ]


def no_baseline_notes(table: pd.DataFrame) -> list[str]:
    """A line saying why no row has a privacy cost, where no run is non-private.

    Each private row's cost is taken against the `privacy=off` runs of its
    kind and data (`_candidates` in research/sweep.py): a sweep of budgets
    alone has none. A line under the table, once.
    """
    private = table["privacy_level"] != LEVELS["off"]
    if not private.any() or not private.all():
        return []
    return [
        f"no privacy cost (-) in any row: {_PRIVACY_COST}, and the sweep holds no "
        "privacy=off run. To get it, run the sweep's overrides again with "
        "privacy=off and without privacy.target_epsilon, "
        + _NEW_FOLDER.format(added="privacy=off")
    ]


def unmatched_notes(table: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """One line naming the private settings no `privacy=off` run matches.

    Only where the sweep holds some `privacy=off` run (else no_baseline_notes
    speaks) and a private row's cost is `-` without a note of several
    candidates. Each setting is named with its budgets and the matched
    columns it differs in from the nearest non-private setting (fewest such
    columns; the first in the table of equals).
    """
    off = table["privacy_level"] == LEVELS["off"]
    lost = table[~off & table["privacy_cost"].isna() & table["privacy_note"].isna()]
    if lost.empty or not off.any():
        return []
    first = runs.groupby("setting", sort=False).first()
    values = setting_values(first, BASELINE_COLUMNS)
    references = list(dict.fromkeys(table.loc[off, "setting"]))
    parts = [
        _unmatched_setting(setting, group, values, references)
        for setting, group in lost.groupby("setting", sort=False)
    ]
    count = len(parts)
    return [
        f"no privacy cost (-) for {count} private {plural(count, 'setting')}: "
        f"{_PRIVACY_COST}, and no privacy=off run in the sweep has the same kind "
        f"and data: {'; '.join(parts)}. To get it, run "
        f"{plural(count, 'its', 'their')} overrides again with privacy=off and "
        "without privacy.target_epsilon, " + _NEW_FOLDER.format(added="privacy=off")
    ]


def _unmatched_setting(
    setting: str, rows: pd.DataFrame, values: pd.DataFrame, references: list[str]
) -> str:
    """'setting' at its budgets, and how it differs from the nearest reference."""
    ours = values.loc[setting]
    differing = {
        reference: [c for c in BASELINE_COLUMNS if values.loc[reference, c] != ours[c]]
        for reference in references
    }
    nearest = min(references, key=lambda reference: len(differing[reference]))
    shown = ", ".join(
        f"{column} ({ours[column]} against {values.loc[nearest, column]})"
        for column in differing[nearest]
    )
    return f"{_at_budgets(setting, rows)} differs from '{nearest}' in {shown}"


def _at_budgets(setting: str, rows: pd.DataFrame) -> str:
    """'setting' at the target epsilons of its `rows` (none named if non-private)."""
    epsilons = ", ".join(f"{eps:g}" for eps in sorted(rows["target_epsilon"].dropna()))
    return f"'{setting}'" + (f" at target epsilon {epsilons}" if epsilons else "")


def no_centralized_notes(table: pd.DataFrame) -> list[str]:
    """A line saying why no row has a federation cost, where no run is centralized.

    A federated row's cost is taken against the centralized runs of its task
    at its privacy level and budget: a sweep of federated runs alone has none.
    A line under the table, once. Client-level DP rows have no centralized
    reference (`unmatched_federated_notes` names them): the line leaves them
    aside, and a sweep of them alone gets theirs instead.
    """
    federated = table["kind"] == "federated"
    client_level = table["privacy_level"] == LEVELS["central"]
    if not federated.any() or not federated.all() or client_level.all():
        return []
    aside = (
        " (the client-level DP settings aside: no centralized run is their reference)"
        if client_level.any()
        else ""
    )
    return [
        f"no federation cost (-) in any row: {_FEDERATION_COST}, and the sweep "
        "holds no centralized run (num_clients=1). To get it, run the sweep's "
        f"overrides{aside} again with experiment=centralized and without "
        "num_clients, " + _NEW_FOLDER.format(added="experiment=centralized")
    ]


def unmatched_federated_notes(table: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Lines naming the federated settings no centralized run matches.

    Only where the sweep holds some centralized run or only client-level DP
    rows (else no_centralized_notes speaks), and a federated row's cost is
    `-` without a note of several candidates. Settings under record-level DP
    or none are named at their budgets beside the centralized runs the sweep
    holds, with the runs that fill them; settings under client-level DP in a
    line of their own, with no run to add: one client's client-level DP hides
    the whole training set.
    """
    federated = table["kind"] == "federated"
    lost = table[
        federated & table["federation_cost"].isna() & table["federation_note"].isna()
    ]
    client_level_only = (table["privacy_level"] == LEVELS["central"]).all()
    if lost.empty or (federated.all() and not client_level_only):
        return []
    tasks = _row_tasks(table, runs)
    lost, centralized = lost.assign(task=tasks), table[~federated].assign(task=tasks)
    # A task is named only where the rows compared are of several.
    show_task = pd.concat([lost["task"], centralized["task"]]).nunique() > 1
    client_level = lost["privacy_level"] == LEVELS["central"]
    return [
        *_centralized_missing(lost[~client_level], centralized, show_task),
        *_client_level_lost(lost[client_level], show_task),
    ]


def _row_tasks(table: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Each row's task, which a setting's name says only where it varies."""
    budget = budget_keys(runs["target_epsilon"])
    task = runs.groupby([runs["setting"], budget], sort=False)["task"].first()
    keys = zip(table["setting"], budget_keys(table["target_epsilon"]), strict=True)
    return pd.Series([task[key] for key in keys], index=table.index)


def _centralized_missing(
    lost: pd.DataFrame, centralized: pd.DataFrame, show_task: bool
) -> list[str]:
    """The line for federated rows whose centralized run at their budget is missing."""
    parts = _named(lost, show_task)
    if not parts:
        return []
    count = len(parts)
    budgets = " at the budgets named" if lost["target_epsilon"].notna().any() else ""
    return [
        f"no federation cost (-) for {count} federated {plural(count, 'setting')}: "
        f"{_FEDERATION_COST}, and none of the sweep's centralized runs "
        f"({'; '.join(_named(centralized, show_task))}) has "
        f"{plural(count, 'its', 'their')} task, privacy level and budget: "
        f"{'; '.join(parts)}. To get it, run {plural(count, 'its', 'their')} "
        f"overrides again{budgets} with experiment=centralized and without "
        "num_clients, " + _NEW_FOLDER.format(added="experiment=centralized")
    ]


def _client_level_lost(lost: pd.DataFrame, show_task: bool) -> list[str]:
    """The line for client-level DP rows: a centralized run would change their unit."""
    parts = _named(lost, show_task)
    if not parts:
        return []
    count = len(parts)
    return [
        f"no federation cost (-) for {count} client-level DP "
        f"{plural(count, 'setting')}, and no run to add for "
        f"{plural(count, 'it', 'them')}: {'; '.join(parts)}. A centralized run is "
        "one client holding every training record, so client-level DP there "
        "would hide the whole training set rather than one client among several: "
        "a stronger guarantee, and its gap would measure that as well as "
        "federation"
    ]


def _named(rows: pd.DataFrame, show_task: bool) -> list[str]:
    """Each setting and task of `rows` at its budgets, the task named if `show_task`.

    Not where the setting's name says it (`task=` is among the columns that
    vary between the federated runs).
    """
    return [
        _at_budgets(setting, group)
        + (f" (task={task})" if show_task and "task=" not in setting else "")
        for (setting, task), group in rows.groupby(["setting", "task"], sort=False)
    ]
