"""What a resume keeps: the settings that deal each client's records and its plan.

A resume goes on charging each client's ledger, so it must deal the same
records to the same clients and, under DP, keep the settings its privacy
plan was calibrated with; a changed one is refused, quoting this start's
value and the run's (`quoted`, which `resumed_student.py` shares).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedmodel.config.compose import OPTION_KEYS
from fedmodel.config.modes import DEPLOYMENT, SIMULATION
from fedmodel.errors import FedmodelError
from fedmodel.run.layout import RESOLVED_CONFIG, checkpoint_file, ledger_files
from fedmodel.run.stored_config import stored_config
from fedmodel.run.task_file_hashes import (
    TASK_FILE_KEYS,
    moved_unchanged,
    rewritten_files,
)

# Settings that decide which records each client holds. Each client's ledger
# counts what was spent on its own records: a resume that dealt them out
# again would charge a record under two ledgers that each count only one.
# `audit.*` plants canaries in a client's training split (the reference count
# moves the planted canaries' draw too).
_RECORD_KEYS = ("task", "partition", "num_clients", "seed", "audit")
# In a deployment each site holds its own file whatever num_clients says: it
# is the number of sites the server waits for and counts spent, which a site
# that joined changes (the round's warning asks for it). Under privacy=central
# it stays, since the server's ledger was calibrated with it.
_DEPLOYED_SITE_COUNT = "num_clients"
# The key that names each group's choice, to the group (`privacy.mode`: privacy).
_OPTION_GROUPS = {key: group for group, key in OPTION_KEYS.items()}
# Said of every record key: not all of them deal records (task.test_file,
# task.label_descriptions), and the line said they did.
_RECORDS_DEALT = (
    "these decide the run's records and classes: which records each client "
    "holds (each client's ledger counts only what was spent on its own), the "
    "records the server holds and tests on, the label set and the head's start"
)
# Said of the seed alone: under partition=natural it deals no record, but a
# run keeps what it drew at its start.
_SEED_DRAWS = (
    "the seed draws what a run keeps from its start, among them which records "
    "each client holds (unless each holds its own, as under partition=natural), "
    "the records held back for local validation (task.val_fraction), audit "
    "canaries, the model's starting weights and each round's batches; a resume "
    "goes on as the same run, with the seed its rounds so far used"
)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [prefix or "<root>"] if old != new else []
    keys = sorted(set(old) | set(new), key=str)
    return [
        changed
        for key in keys
        for changed in changed_keys(
            old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key)
        )
    ]


def check_kept_settings(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse a resume whose settings deal other records or change its plan.

    `config` is this start's settings as a nested dict, checked against the
    run's resolved config. A folder without that file passes, unless the
    run's checkpoint or a privacy ledger is there: then nothing would check
    what the run drew.
    """
    # Data files are compared by the absolute paths they name, whatever
    # folder the run was started in and this resume runs in; a file moved
    # elsewhere, by its name and content, and one at the run's path by its
    # content too (`task_file_hashes.py`).
    earlier = stored_config(run_dir)
    if earlier is None:
        _refuse_a_run_without_its_config(run_dir)
        return
    changed = _records_changed(run_dir, config=config, earlier=earlier)
    if changed:
        raise FedmodelError(
            f"resume=true in {run_dir} with {quoted(changed, config, earlier)}: "
            f"{_SEED_DRAWS if changed == ['seed'] else _RECORDS_DEALT}; resume "
            f"with the run's values (its {RESOLVED_CONFIG}{_moved_files(changed)}), "
            "or start a new run in a new folder"
        )
    _refuse_rewritten_files(run_dir, config)
    # Compared as written: a deployment's DP-SGD plan is its sites' own, {}
    # here as privacy=off's is, so comparing plans let a simulation's rounds
    # trained without noise go on as a deployment under DP-SGD.
    switched = [
        key
        for key in ("privacy.mode", "federation.name")
        if value_at(earlier, key) != value_at(config, key)
    ]
    if switched:
        raise FedmodelError(
            f"resume=true in {run_dir} with {quoted(switched, config, earlier)}: "
            "a resume keeps the run's privacy mode and federation (a simulation's "
            "clients and a deployment's sites hold other records and ledgers), "
            "since the rounds trained under one and then the other have no one "
            "guarantee; resume with the run's values (its "
            f"{RESOLVED_CONFIG}), or start a new run in a new folder"
        )
    old_plan, new_plan = _plan_settings(earlier), _plan_settings(config)
    changed = changed_keys(old_plan, new_plan)
    if changed:
        raise FedmodelError(
            f"resume=true in {run_dir} with {quoted(changed, config, earlier)}: "
            "the run's privacy plan was calibrated with these, and each ledger "
            "keeps the noise multiplier of that plan, so the run would go on at "
            "noise fitted to another plan and `fedmodel privacy-plan` would not "
            f"show what runs; resume with the run's values (its {RESOLVED_CONFIG}), "
            "or start a new run in a new folder"
        )


def _refuse_a_run_without_its_config(run_dir: Path) -> None:
    """Refuse a resume where a run's checkpoint or ledgers lie without its config.

    A start writes its resolved config before any round, so a folder without
    one held no run, unless the file was lost: then nothing would check what
    the run drew, and its clients would go on from their ledgers at the noise
    of another plan than `fedmodel privacy-plan` shows, up to this start's
    target (a resume with target 8 of a run planned for 1 went on at the
    run's noise, its ledgers' cap raised from 1 to 8).
    """
    ledgers = [str(path.relative_to(run_dir)) for path in ledger_files(run_dir)]
    if checkpoint_file(run_dir).is_file():
        left = "the run's checkpoint is there"
    elif ledgers:
        more = ", ..." if len(ledgers) > 3 else ""
        left = f"the run's privacy ledgers are there ({', '.join(ledgers[:3])}{more})"
    else:
        return
    raise FedmodelError(
        f"resume=true in {run_dir}: {left}, but not its {RESOLVED_CONFIG}, which "
        "holds the settings its records and privacy plan were drawn with and a "
        "resume checks against: restore it, or start a new run in a folder of "
        "its own"
    )


def _records_changed(
    run_dir: Path, *, config: dict[str, Any], earlier: dict[str, Any]
) -> list[str]:
    """The changed keys that deal records; a data file moved unchanged is not."""
    return [
        key
        for key in changed_keys(earlier, config)
        if key.split(".")[0] in _record_keys(config)
        and not (
            key in TASK_FILE_KEYS
            and moved_unchanged(
                run_dir, was=value_at(earlier, key), now=value_at(config, key)
            )
        )
    ]


def _refuse_rewritten_files(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse a resume whose data file at the run's path holds other bytes."""
    named = {key: value_at(config, key) for key in TASK_FILE_KEYS}
    rewritten = rewritten_files(run_dir, named)
    if rewritten:
        raise FedmodelError(
            f"resume=true in {run_dir} with {'; '.join(rewritten[:4])}: its bytes "
            "changed since the run's last start, so the run would go on training "
            "or evaluating on other records than its own, and each client's "
            "ledger counts only what was spent on its own; restore the run's file "
            "at that path, or start a new run in a new folder"
        )


def _moved_files(changed: list[str]) -> str:
    """What a refusal that names a data file adds: it may name the run's, moved."""
    if not set(changed) & set(TASK_FILE_KEYS):
        return ""
    return "; a data file may be the run's moved elsewhere, its name and bytes kept"


def _record_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The top-level keys a resume of this run must keep for its records."""
    deployed = value_at(config, "federation.name") == DEPLOYMENT
    if deployed and value_at(config, "privacy.mode") != "central":
        return tuple(key for key in _RECORD_KEYS if key != _DEPLOYED_SITE_COUNT)
    return _RECORD_KEYS


def _plan_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a DP run's privacy plan is calibrated with, or {}.

    A deployment's sites keep their ledgers in their own state folders and
    plan with their own caps, so a resumed server may ask them for more
    rounds or a larger target; each site goes on at its ledger's noise until
    its cap stops it (deployment.md). Under `privacy=central` the budget is
    the server's own ledger in the run folder, which no site caps: its plan
    is kept in a deployment as in a simulation.
    """
    privacy = config.get("privacy") or {}
    federation = config.get("federation") or {}
    mode = privacy.get("mode", "off")
    simulated = federation.get("name") == SIMULATION
    if mode == "off" or not (simulated or mode == "central"):
        return {}
    plan: dict[str, Any] = {"num_rounds": config.get("num_rounds"), "privacy": privacy}
    if mode == "central":  # its sample rate is fraction_train
        strategy = config.get("strategy") or {}
        plan["strategy"] = {"fraction_train": strategy.get("fraction_train")}
    if not simulated:
        return plan
    finetune = config.get("finetune") or {}
    plan["finetune"] = {
        "batch_size": finetune.get("batch_size"),
        "local_epochs": finetune.get("local_epochs"),
    }
    distill = config.get("distill") or {}
    federated = distill.get("name") == "federated"  # its rounds are charged too
    plan["distill"] = {"rounds": distill.get("rounds") if federated else 0}
    return plan


def quoted(
    keys: list[str], config: Mapping[str, Any], earlier: Mapping[str, Any]
) -> str:
    """How a resume refusal quotes changed keys: this start's value, the run's."""
    return ", ".join(_changed(key, config, earlier) for key in keys[:4])


def _changed(key: str, config: Mapping[str, Any], earlier: Mapping[str, Any]) -> str:
    """`key=NOW (the run's: THEN)`, a group's choice as a user picks it."""
    now, then = value_at(config, key), value_at(earlier, key)
    group = _OPTION_GROUPS.get(key)
    if group is not None:  # a user picks privacy=off, not privacy.mode
        return f"{group}={now} (the run's: {group}={then})"
    return f"{key}={now!r} (the run's: {then!r})"


def value_at(config: Mapping[str, Any], dotted: str) -> Any:
    """A dotted key's value in a nested config; None where it has none."""
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
