"""A simulated client's task files: the bytes the run began with, or a refusal.

A simulated client holds the records dealt to it at the run's start for the
whole run. A task file edited while the run goes on is read, and its records
dealt out, again (`data/clients.py` keys its cache by each file's version),
so records move between clients. A client with a ledger notices
(`private_round.py`, by its records' fingerprint); one with none yet (first
chosen after the edit, or every client when the edit lands before their
first read) would train on the records dealt again, its first charge counting
them. So each round of a simulated client compares the sha256 of the bytes
its records were parsed from, hashed in that read (`ClientRead.file_sha256`),
with the run's record of each file (`run/task_file_hashes.py`) before it
charges or trains, under every privacy mode: under `privacy=central` and
`off` the run would go on with other data than it began with, as a resume is
refused for (`resumed_settings.py`). A deployed site is not checked: its own
file may change between federations, and the server holds no site file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fedmodel.client.private_round import DATA_CHANGED, WAY_OUT
from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.run.task_file_hashes import TASK_FILE_KEYS, rewritten_files


def check_files_read(
    settings: RunSettings, *, client_id: int, read: Mapping[str, str]
) -> None:
    """Refuse a simulated client whose records came from other bytes than the run's.

    `read` is the sha256 of each file the records were parsed from. A run
    folder without the record (written before it was kept) or a path it
    does not hold is not compared, as a resume does not: nothing tells the
    run's bytes there.
    """
    if not read:  # a shipped task (bank, hospital): no user's file
        return
    named = {
        key: getattr(settings.task, key.removeprefix("task.")) for key in TASK_FILE_KEYS
    }
    said = rewritten_files(Path(settings.run_dir), named, read=read)
    if said:
        raise FedmodelError(
            f"client {client_id} read {'; '.join(said)}: {DATA_CHANGED} and the "
            f"client would train on other records than the run began with. {WAY_OUT}"
        )
