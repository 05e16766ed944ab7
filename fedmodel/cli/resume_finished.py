"""A resume of a run that has finished: refused alone, kept as it is in a sweep.

`fedmodel resume` (and `fedmodel simulate ... resume=true` in a sweep's
folder) on a run whose summary.json says it did every round asked for would
train no round, yet export the model again and rewrite summary.json. Such a
run first gets what a stop after its summary left out, its model cards and
its tracking; then `fedmodel resume` refuses it, and a resumed sweep keeps
its final accuracy without running it again.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmodel.cli.hydra_files import task_overrides
from fedmodel.config.compose import RUN_FOLDER_KEY
from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_manifest import RESUME_KEY
from fedmodel.run.layout import RESOLVED_CONFIG, SUMMARY_FILE
from fedmodel.run.run_files import parsed_file
from fedmodel.run.stored_config import stored_config

if TYPE_CHECKING:
    from fedmodel.config import RunSettings

log = logging.getLogger(__name__)

# The config keys each start sets itself, not what its run is.
SET_BY_THE_START = (RUN_FOLDER_KEY, RESUME_KEY)


def check_rounds_left(run_dir: Path, argv: list[str]) -> None:
    """Refuse a run whose summary says it did every round the resume asks for.

    `fedmodel simulate ... resume=true` on such a run trains no round, exports
    (and distils) the model again and rewrites summary.json. A run whose
    summary says it failed, or whose last round is before `num_rounds` (more
    rounds asked for since), goes on; so does one that finished its rounds
    but was stopped before its summary was written. A finished run first gets
    what a stop after its summary left out: its cards, its tracking.
    """
    from fedmodel.config import compose_config, settings_from_dict

    summary = _finished_summary(run_dir)
    if summary is None:
        return
    # The settings are checked before num_rounds is read, so a num_rounds that
    # is no number is refused by its key, not met as a traceback.
    config = compose_config(task_overrides(argv))
    settings = settings_from_dict({**config, RUN_FOLDER_KEY: str(run_dir)})
    num_rounds = settings.num_rounds
    why = _finished_because(summary, settings)
    if why is not None:
        cards = _complete(settings, run_dir, summary)
        raise FedmodelError(
            f"the run in {run_dir} has finished ({SUMMARY_FILE}: num_rounds="
            f"{num_rounds}, {why}): nothing to resume{cards}; its outputs are in "
            "that folder. Add num_rounds=N for more rounds (not under DP: its "
            "plan is fixed), or start a new run in a new folder"
        )


def finished_sweep_job(run_dir: Path, settings: RunSettings) -> float | None:
    """The final accuracy of a resumed sweep's job that has finished, or None.

    `fedmodel simulate --multirun ... resume=true` continues a stopped sweep in
    its folder: a job whose run finished is not run again (its model exported
    and its summary, timings included, rewritten), as `check_rounds_left`
    refuses it for `fedmodel resume`. A finished run there whose resolved
    config differs in a key other than the start's own is another job's: it
    is refused, naming the keys.
    """
    from fedmodel.run.resumed_settings import changed_keys

    summary = _finished_summary(run_dir)
    why = None if summary is None else _finished_because(summary, settings)
    if why is None:
        return None
    earlier = stored_config(run_dir) or {}
    changed = [
        key
        for key in changed_keys(earlier, asdict(settings))
        if key.split(".")[0] not in SET_BY_THE_START
    ]
    if changed:
        raise FedmodelError(
            f"the sweep job's folder {run_dir} holds a finished run of other "
            f"settings ({', '.join(changed[:4])} differ from its {RESOLVED_CONFIG})"
            ": give the sweep a folder of its own (hydra.sweep.dir=...)"
        )
    assert summary is not None  # a run with no summary is not finished
    log.info(
        "%s has finished (%s: num_rounds=%d, %s%s): kept as it is, not run again",
        run_dir,
        SUMMARY_FILE,
        settings.num_rounds,
        why,
        _complete(settings, run_dir, summary),
    )
    return float(summary["final_accuracy"])


def _complete(settings: RunSettings, run_dir: Path, summary: dict[str, Any]) -> str:
    """Give a finished run what a stop after its summary left out; what to say.

    Its cards are checked first and written last: a tracking store that
    cannot be reached stops the resume with the folder as it was, and the
    tracker's id written into summary.json does not make a model folder
    exported after the summary look older than it (`missing_cards`).
    """
    from fedmodel.run.tracking import track_if_untracked
    from fedmodel.serve.missing_cards import missing_cards, write_missing_cards

    missing = missing_cards(run_dir, summary)
    track_if_untracked(settings, run_dir, summary)
    return write_missing_cards(run_dir, summary, missing)


def _finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary where it says the run finished well; else None."""
    from fedmodel.run.summary import STATUS_OK

    path = run_dir / SUMMARY_FILE
    fix = "restore it, or move it aside (the resumed run writes it again)"
    summary = parsed_file(path, fix=fix) if path.is_file() else None
    if not isinstance(summary, dict) or summary.get("status", STATUS_OK) != STATUS_OK:
        return None
    return summary


def _finished_because(summary: dict[str, Any], settings: RunSettings) -> str | None:
    """Why a run of these settings with this summary has no round left, or None.

    With fewer clients of budget left than `federation.min_replies`, no round
    could be kept (`federation/budget_stop.py`); a lower one goes on.
    """
    last = max((int(r["round"]) for r in summary.get("rounds", [])), default=0)
    clients = summary.get("clients") or []
    spent = sum(bool(c.get("budget_exhausted")) for c in clients)
    if clients and spent == len(clients):
        return "every client's budget is spent"
    left, least = settings.num_clients - spent, settings.federation.min_replies
    if left < least:
        return (
            f"{left} of {settings.num_clients} clients {plural(left, 'has', 'have')}"
            f" budget left, fewer than federation.min_replies={least}; a lower "
            "one goes on with them"
        )
    return f"round {last} is done" if last >= settings.num_rounds else None
