"""The clients' records and the task's files, read and checked before torch loads.

`fedmodel simulate` asks this first of the checks on a run's records, and
`fedmodel privacy-plan` the transfer file's and the labels' descriptions'
(on the task it loads itself): nothing here imports torch, Opacus or
transformers, so a missing or unparseable file, a label column that is not
there, a label not described or a file named in two roles is refused in the
time Python, Hydra and `datasets` take to load, not after the privacy and
model code have loaded too. The checks that need the privacy plan follow
(`client/record_check.py`), then the model's (`federation/preflight.py`),
all before Flower starts.
"""

from __future__ import annotations

from fedmodel.config import RunSettings
from fedmodel.data.clients import load_client_data
from fedmodel.data.file_roles import check_transfer_file
from fedmodel.data.label_descriptions import described_labels
from fedmodel.data.scored_labels import refuse_unscored_test_file
from fedmodel.data.splits import TaskData
from fedmodel.data.tasks import load_task
from fedmodel.data.transfer_texts import transfer_file_texts


def check_readable_records(settings: RunSettings) -> None:
    """Refuse a client whose records cannot be read, or a task file the run cannot use.

    The transfer file first (`check_readable_transfer_file`), as the server
    reads it before the records. Every client's records load as the run loads
    them (`load_client_data`, cached for the checks after this; the task
    they are dealt from, `load_task`'s, for the ServerApp of this process).
    Then the labels' descriptions (`check_described_labels`), and a test
    file none of whose records holds a class (`refuse_unscored_test_file`).
    """
    check_readable_transfer_file(settings)
    for client_id in range(settings.num_clients):
        load_client_data(settings, client_id)
    # Cached: the task the clients' records were dealt from.
    task = load_task(settings.task, seed=settings.seed)
    check_described_labels(settings, task)
    refuse_unscored_test_file(settings.task, task)


def check_described_labels(settings: RunSettings, task: TaskData) -> None:
    """Refuse a fresh run's label that `task.label_descriptions` does not describe.

    Each label needs one description where the key names a file
    (`described_labels`, on the file as the task read it); a resumed run's
    head starts from its checkpoint, which needs none.
    """
    if not settings.resume:
        described_labels(settings.task, task.label_names, task.label_descriptions)


def check_readable_transfer_file(settings: RunSettings) -> None:
    """With distillation on, refuse a `distill.transfer_file` the server cannot use.

    It must be no site's file and not the test file (`check_transfer_file`:
    paths alone, as the task's own roles are checked), and its texts must
    read as distillation reads them (`transfer_file_texts`, kept for the
    model's checks and the ServerApp of this process).
    """
    if settings.distill.enabled:
        check_transfer_file(settings)
        transfer_file_texts(settings)
