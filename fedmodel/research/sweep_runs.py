"""The runs of a sweep folder, one row each, for `fedmodel sweep-report`.

A run folder is any folder under the sweep folder holding `summary.json` and
`resolved_config.yaml` (what `fedmodel simulate` writes); one without a summary,
or whose summary says it failed, is skipped with a warning.

Runs are one setting when the columns below agree and nothing else in their
resolved configs differs but the seed: a key that differs between runs the
columns would merge (a learning rate, a model) is added to their setting's name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmodel.config.budget_rule import AUTO, BUDGET_KEYS, RULE_KEYS, config_row
from fedmodel.config.compose import RUN_FOLDER_KEY
from fedmodel.config.flat_keys import dotted
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_manifest import RESUME_KEY, jobs_without_result
from fedmodel.run.layout import RESOLVED_CONFIG, SUMMARY_FILE
from fedmodel.run.run_files import parsed_mapping
from fedmodel.run.summary import STATUS_OK, charged_epsilon

if TYPE_CHECKING:  # imported where the rows are made (`collect_runs`)
    import pandas as pd

log = logging.getLogger(__name__)

# What to do about a run folder's file that cannot be read.
_SKIP_IT = "restore it, or move its run folder out of the sweep folder"

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
# The budget of a run without one (privacy=off), where runs are grouped or
# matched by budget: pandas leaves NaN keys out of a groupby, and NaN equals
# nothing.
NO_BUDGET = -1.0
# Setting columns the budget rule can choose, and the column holding its choice
# (empty where the run set the value itself). A run whose value the rule chose
# ran "the default at its budget": it is the same setting as a run at another
# budget, whose rule row may differ.
RULE_COLUMNS = {"local_epochs": "rule_local_epochs"}
# Resolved-config keys that never make two runs different settings
# (budget_rule_keys: a value the rule chose reads `auto` already).
PER_RUN_KEYS = ("seed", RUN_FOLDER_KEY, RESUME_KEY, RULE_KEYS)


def check_sweep_folder(sweep_dir: Path) -> None:
    """Refuse a sweep folder that does not exist, or is a file."""
    if not sweep_dir.exists():
        raise FedmodelError(f"sweep folder {sweep_dir} does not exist")
    if not sweep_dir.is_dir():
        raise FedmodelError(f"{sweep_dir} is a file, not a sweep folder")


def find_runs(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """Return (finished, unfinished) run folders under `sweep_dir`; either may be [].

    Unfinished ones hold a resolved config but no summary (a run that failed
    or is still going), or a summary whose status is not ok (a run that failed
    after its start: its accuracy is not a trained model's).
    """
    check_sweep_folder(sweep_dir)
    started = sorted(p.parent for p in sweep_dir.rglob(RESOLVED_CONFIG))
    finished = [run for run in started if _finished(run)]
    return finished, [run for run in started if run not in finished]


def _finished(run: Path) -> bool:
    path = run / SUMMARY_FILE
    summary = parsed_mapping(path, fix=_SKIP_IT) if path.is_file() else {"status": None}
    return summary.get("status", STATUS_OK) == STATUS_OK  # older runs: no status


def run_row(run_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    """One run's settings and results, flat, with its whole config (`config`)."""
    config = parsed_mapping(run_dir / RESOLVED_CONFIG, fix=_SKIP_IT)
    summary = parsed_mapping(run_dir / SUMMARY_FILE, fix=_SKIP_IT)
    try:
        privacy = config["privacy"]
        partition = config["partition"]
        num_clients = int(config["num_clients"])
        guarantee = summary.get("privacy_guarantee") or {}
        charged = (charged_epsilon(c) for c in summary["clients"])
        epsilons = [e for e in charged if e is not None]
        stated = guarantee.get("epsilon")
        alpha = (
            f" alpha={partition['alpha']:g}" if partition["name"] == "dirichlet" else ""
        )
        ruled = _ruled_keys(config)
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
            "rule_local_epochs": _rule_local_epochs(config, ruled),
            "max_grad_norm": privacy.get("max_grad_norm"),
            "accountant": privacy["accountant"] if privacy["mode"] != "off" else None,
            "target_delta": privacy.get("target_delta"),
            "target_epsilon": privacy.get("target_epsilon")
            if privacy["mode"] != "off"
            else None,
            "seed": int(config["seed"]),
            "final_accuracy": float(summary["final_accuracy"]),
            "final_macro_f1": float(summary["final_macro_f1"]),
            # A summary that could not read a ledger states none: the
            # clients' reports could be less than that ledger holds. An
            # older summary states none either: its clients' charges count.
            "epsilon_spent": stated
            if stated is not None or guarantee.get("unstated")
            else (max(epsilons) if epsilons else None),
            "rounds_completed": int(summary["rounds_completed"]),
            "wall_seconds": float(summary["wall_seconds"]),
            "config": _flat_config(config, ruled),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise FedmodelError(
            f"run folder {run_dir}: {SUMMARY_FILE} or {RESOLVED_CONFIG} lacks what a "
            f"fedmodel run writes ({type(exc).__name__}: {exc}); rerun it or move "
            "it out of the sweep folder"
        ) from exc


def _ruled_keys(config: dict[str, Any]) -> set[str]:
    """The dotted keys whose values the budget rule chose for this run.

    Runs list them in their resolved config (`budget_rule_keys`), so a value a
    user set equal to the rule's row stays theirs. Older run folders lack the
    list; for them a value equal to the rule's row is taken as the rule's, the
    only sign such a folder leaves.
    """
    if RULE_KEYS in config:
        return set(map(str, config[RULE_KEYS]))
    try:
        row = config_row(config)
    except FedmodelError:  # a finetune mode this version does not know
        return set()
    return {
        f"{group}.{key}"
        for group, key in BUDGET_KEYS
        if isinstance(config.get(group), dict)
        and key in config[group]
        and config[group][key] == getattr(row, key)
    }


def _flat_config(config: dict[str, Any], ruled: set[str]) -> dict[str, str]:
    """Dotted key -> value as text; a value the budget rule chose reads `auto`."""
    flat = {
        key: AUTO if key in ruled else str(value)
        for key, value in dotted(config).items()
    }
    for key in PER_RUN_KEYS:
        flat.pop(key, None)
    return flat


def _rule_local_epochs(config: dict[str, Any], ruled: set[str]) -> int | None:
    """The local epochs the budget rule chose for this run; None where it did not."""
    if "finetune.local_epochs" not in ruled:
        return None
    return int(config["finetune"]["local_epochs"])


def budget_keys(epsilons: pd.Series) -> pd.Series:
    """Each run's target epsilon to group or match by; NO_BUDGET where it has none."""
    return epsilons.fillna(NO_BUDGET)


def setting_values(runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`runs[columns]` as text, with `auto` where a value is the budget rule's."""
    values = runs[columns].astype(str)
    for column, rule in RULE_COLUMNS.items():
        if column in columns:
            values.loc[runs[column] == runs[rule], column] = AUTO
    return values


def collect_runs(sweep_dir: Path) -> pd.DataFrame:
    """Every finished run under `sweep_dir`, one row each, with a setting label.

    Its `config` column holds each run's resolved config, flat (dotted key ->
    text, `auto` where the budget rule chose the value, no seed).
    """
    finished, unfinished = find_runs(sweep_dir)
    for run in unfinished:
        log.warning(
            "skipping %s: it has no %s, or its %s says it failed",
            run,
            SUMMARY_FILE,
            SUMMARY_FILE,
        )
    if not finished:
        raise FedmodelError(_none_finished(sweep_dir, unfinished))
    # Only now (most of a second): a refusal above answers without pandas.
    import pandas as pd

    runs = pd.DataFrame([run_row(run, sweep_dir) for run in finished])
    configs = list(runs.pop("config"))
    runs.insert(1, "setting", _labels(runs))
    runs["setting"] = _split_by_other_keys(runs, configs)
    runs["config"] = configs
    return runs


def _none_finished(sweep_dir: Path, unfinished: list[Path]) -> str:
    """The error for a folder without a finished run, its sweep's jobs logged first.

    A sweep whose every job failed, or stopped, is named job by job as a
    sweep with some finished runs is in its report; only a folder with no
    run and no sweep in it is called the wrong folder.
    """
    missing = jobs_without_result(sweep_dir, set())
    for line in missing:
        log.warning("%s", line)
    if not missing and not unfinished:
        return (
            f"{sweep_dir} holds no finished run folder (one with {SUMMARY_FILE} "
            f"and {RESOLVED_CONFIG}): give the folder a `fedmodel simulate "
            "--multirun` wrote (its hydra.sweep.dir), or a folder of such folders"
        )
    count, what = (len(missing), "job") if missing else (len(unfinished), "run")
    return (
        f"none of the {count} {plural(count, what)} under {sweep_dir} finished "
        "(each named above, with why): continue a stopped one with `fedmodel "
        "resume JOB_FOLDER`, or rerun the sweep, then report it"
    )


def _split_by_other_keys(
    runs: pd.DataFrame, configs: list[dict[str, str]]
) -> list[str]:
    """Each setting's name, plus any config key its runs at one budget differ in.

    Runs the columns merge that differ elsewhere (other than the seed) would
    otherwise be averaged as if they were seeds of one setting. The key is
    named on every run of that setting, so each budget's runs keep one name.
    """
    budget = budget_keys(runs["target_epsilon"])
    split: dict[str, set[str]] = {label: set() for label in runs["setting"]}
    for (label, _), index in runs.groupby(
        [runs["setting"], budget], sort=False
    ).groups.items():
        group = [configs[i] for i in index]
        every = {key for config in group for key in config}
        split[label] |= {k for k in every if len({c.get(k) for c in group}) > 1}
    return [
        ", ".join([label, *(f"{k}={configs[i].get(k)}" for k in sorted(split[label]))])
        for i, label in enumerate(runs["setting"])
    ]


def _labels(runs: pd.DataFrame) -> list[str]:
    """Name each setting by its kind and privacy, plus whatever varies in the sweep.

    Centralized runs are one client holding everything, so the client count
    and partition are left out of their names.
    """
    values = setting_values(runs, SETTING_COLUMNS)
    federated = runs["kind"] == "federated"
    pool = values[federated] if federated.any() else values
    varying = [column for column in SETTING_COLUMNS[2:] if pool[column].nunique() > 1]
    labels = []
    for (_, row), (_, shown) in zip(runs.iterrows(), values.iterrows(), strict=True):
        extra = [
            f"{column}={shown[column]}"
            for column in varying
            if row["kind"] == "federated" or column not in CLIENT_COLUMNS
        ]
        labels.append(", ".join([row["kind"], row["privacy_level"], *extra]))
    return labels
