"""A change to a privacy ledger's file: made under its lock, on what it holds.

Read-modify-write from disk, so another process's charges to the same file
stay; a file that no longer holds this process's charges is refused, never
overwritten, and one that vanished (deleted, or archived by a reset since
this process opened it) is written again with them. The write is durable
before it returns, or it raises.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fedmodel.errors import FedmodelError
from fedmodel.privacy.durable_file import RenameNotSynced, exclusive_lock, write_durably
from fedmodel.privacy.ledger_record import LedgerRecord, read_record
from fedmodel.privacy.ledger_reopen import check_same_budget

logger = logging.getLogger(__name__)


def commit_change(
    path: Path,
    mine: LedgerRecord,
    change: Callable[[LedgerRecord], LedgerRecord],
    *,
    now_reads: Callable[[LedgerRecord], None],
) -> None:
    """Apply `change` to the ledger at `path` under its lock, and write the result.

    `mine` is what this process holds. `now_reads` is told each record the
    file holds: the one `change` is applied to (so a refusal it raises leaves
    the caller with the charges on disk), and the one written, even when its
    folder could not be synced.
    """
    with contextlib.ExitStack() as held:
        try:  # the first write into the state folder: a read-only one fails here
            held.enter_context(exclusive_lock(path))
        except OSError as exc:
            raise FedmodelError(
                f"cannot lock privacy ledger {path} ({exc.strerror or exc}"
                f" on {path.name}.lock): the round is not charged and its "
                f"update is not sent; make the state directory "
                f"{path.parent} writable"
            ) from exc
        base = _with_disk_history(path, mine)
        now_reads(base)
        updated = change(base)
        try:
            write_durably(path, updated.to_json())
        except RenameNotSynced as exc:
            now_reads(updated)
            raise FedmodelError(
                f"privacy ledger {path} is written, with any charge of this "
                f"round, but its folder was not synced ({exc}), so a power cut may "
                "undo it: the update is not sent; check the state directory's disk"
            ) from exc
        except (OSError, ValueError) as exc:
            raise FedmodelError(
                f"could not write privacy ledger {path} ({exc}): the "
                "round is not charged and its update must not be sent; make "
                "the state directory writable with free space"
            ) from exc
        now_reads(updated)


def _with_disk_history(path: Path, mine: LedgerRecord) -> LedgerRecord:
    """`mine` with the history on disk, which must begin with `mine`'s.

    A file that is gone gives `mine` as it is: its charges are written back
    (an over-count where a reset archived them, never a loss).
    """
    if not path.exists():
        if mine.history:
            logger.warning(
                "privacy ledger %s vanished; rewriting its %d charged rounds",
                path,
                len(mine.history),
            )
        return mine
    disk = read_record(path)
    check_same_budget(path, stored=disk, wanted=mine)
    if disk.history[: len(mine.history)] != mine.history:
        raise FedmodelError(
            f"privacy ledger {path} no longer holds the rounds this "
            "process charged: it was replaced while in use. Stop other runs "
            "using this state directory and restore the file"
        )
    return replace(mine, history=disk.history, rounds=disk.rounds)
