"""A finished run's model cards that a stop left out, written from its summary.

fedmodel once wrote summary.json, which says a run finished, before the
cards (README.md): a stop between the two left `model/` without its card,
and `fedmodel resume` refused the run as finished. The resume (and a resumed
sweep, of a finished job) now writes those cards.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError
from fedmodel.run.layout import MODEL_CARD_FILE, SUMMARY_FILE
from fedmodel.run.stored_config import stored_config, stored_settings
from fedmodel.serve.exported_folder import CONFIG_FILE
from fedmodel.serve.model_card import MODEL_FOLDERS, write_card


def write_missing_cards(
    run_dir: Path, summary: Mapping[str, Any], missing: Mapping[str, Path]
) -> str:
    """Write the cards `missing_cards` found a finished run lacks; what to say of it.

    The settings are the run's resolved config, its finishing start's. The
    clause is for the line saying the run has finished; "" if none was missing.
    """
    if not missing:
        return ""
    then = "write its missing model cards"
    settings = stored_settings(run_dir, stored_config(run_dir) or {}, then=then)
    written = [
        str(write_card(summary, settings, role=role, folder=folder))
        for role, folder in missing.items()
    ]
    return (
        f", but its model {plural(len(written), 'card')} {' and '.join(written)} "
        f"{'was' if len(written) == 1 else 'were'} missing (left out by a stop as "
        f"the run finished): written now from {SUMMARY_FILE}"
    )


def missing_cards(run_dir: Path, summary: Mapping[str, Any]) -> dict[str, Path]:
    """The model folders of a finished run that lack their card, by role.

    Its summary describes the weights beside it: it was written after they
    were exported, and a later start marks it resumed before it exports
    again (`run/summary.mark_resumed`). A folder written after the summary
    (by a start too old to mark it) is refused: the summary may not describe
    it.
    """
    written = (run_dir / SUMMARY_FILE).stat().st_mtime
    missing = {}
    for role, name in MODEL_FOLDERS.items():
        folder = run_dir / name
        exported = (folder / CONFIG_FILE).is_file()
        if not isinstance(summary.get(role), Mapping) or not exported:
            continue  # a model the run did not make, or one removed since
        if (folder / MODEL_CARD_FILE).is_file():
            continue
        if (folder / CONFIG_FILE).stat().st_mtime > written:
            raise FedmodelError(
                f"{folder} has no model card ({MODEL_CARD_FILE}) and was written "
                f"after {run_dir / SUMMARY_FILE}, which so may not describe it: "
                f"move {SUMMARY_FILE} aside, and `fedmodel resume {run_dir}` "
                "exports the models again with their cards"
            )
        missing[role] = folder
    return missing
