"""Run-folder files: metrics.jsonl (a line per round), progress.png, JSON writes."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedmodel.errors import FedmodelError
from fedmodel.privacy.durable_file import write_durably
from fedmodel.run.layout import METRICS_FILE, PLOT_FILE
from fedmodel.run.run_files import unreadable

log = logging.getLogger(__name__)

_METRICS_FIX = (
    "restore the file, or delete that line (only that round's figures leave "
    "metrics.jsonl and progress.png; the checkpoint, model and ledgers do not "
    "read them)"
)
_CUT_SHORT = (
    "%s: line %d, the last, was cut short by a write that stopped midway (a full "
    "disk, a power cut) and is left out: that round's figures are missing from "
    "metrics.jsonl and progress.png; the checkpoint, model and ledgers do not "
    "read them"
)


def clean_json(value: Any) -> Any:
    """JSON has no NaN or inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def append_round(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one round's figures to metrics.jsonl and flush them to disk."""
    with (run_dir / METRICS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(clean_json(record)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def numbered_name(path: Path) -> Path:
    """The first free `name.<n>.ext` beside `name.ext`, n from 1."""
    number = 1
    while (target := path.with_name(f"{path.stem}.{number}{path.suffix}")).exists():
        number += 1
    return target


def read_rounds(run_dir: Path) -> list[dict[str, Any]]:
    """Every round recorded in a run folder's metrics.jsonl.

    A last line cut short (no newline after it and not JSON: a write that
    stopped midway, as on a full disk) is left out with a warning; any other
    line that is not a JSON object is a FedmodelError naming it.
    """
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise unreadable(path, exc, fix=_METRICS_FIX) from exc
    rounds = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                log.warning(_CUT_SHORT, path, number)
                break
            raise unreadable(path, exc, fix=_METRICS_FIX, line=number) from exc
        if not isinstance(record, dict) or "round" not in record:
            raise FedmodelError(
                f"{path} line {number} holds no round's figures (a JSON object "
                f"with a 'round'); {_METRICS_FIX}"
            )
        rounds.append(record)
    return rounds


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON atomically (temp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean_json(payload), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def plot_progress(run_dir: Path) -> Path:
    """Accuracy and max/mean client epsilon by round, as progress.png."""
    # Only here: this module's other readers (a run's summary, sweep-report)
    # answer without matplotlib's import (a third of a second).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = read_rounds(run_dir)
    figure, accuracy_axis = plt.subplots(figsize=(7, 4))
    xs = [r["round"] for r in rounds]
    accuracy_axis.plot(
        xs,
        [r["accuracy"] for r in rounds],
        "o-",
        color="tab:blue",
        label="test accuracy",
    )
    accuracy_axis.set_xlabel("round")
    accuracy_axis.set_ylabel("server test accuracy", color="tab:blue")
    accuracy_axis.set_ylim(0, 1)
    with_epsilon = [r for r in rounds if r.get("epsilon_max") is not None]
    if with_epsilon:
        epsilon_axis = accuracy_axis.twinx()
        ex = [r["round"] for r in with_epsilon]
        epsilon_axis.plot(
            ex,
            [r["epsilon_max"] for r in with_epsilon],
            "s--",
            color="tab:red",
            label="max client epsilon",
        )
        epsilon_axis.plot(
            ex,
            [r["epsilon_mean"] for r in with_epsilon],
            "^:",
            color="tab:orange",
            label="mean client epsilon",
        )
        epsilon_axis.set_ylabel("epsilon spent", color="tab:red")
        epsilon_axis.set_ylim(bottom=0)
        epsilon_axis.legend(loc="lower right")
    accuracy_axis.legend(loc="upper left")
    accuracy_axis.set_title("fedmodel run progress")
    figure.tight_layout()
    path = run_dir / PLOT_FILE
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def keep_rounds_up_to(run_dir: Path, last_round: int) -> None:
    """Drop metrics.jsonl lines after `last_round` (written before a crash).

    The round is run again on resume and would otherwise appear twice; a last
    line cut short by a crash is dropped too (`read_rounds`). The file is
    replaced in one step (temp file, fsync, rename): a kill during the rewrite
    leaves the old lines or the new, never fewer.
    """
    rounds = read_rounds(run_dir)
    kept = [r for r in rounds if r["round"] <= last_round]
    lines = "".join(json.dumps(clean_json(record)) + "\n" for record in kept)
    path = run_dir / METRICS_FILE
    if path.is_file() and path.read_text(encoding="utf-8") != lines:
        write_durably(path, lines)
