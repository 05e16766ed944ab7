"""A deployed site's own records: its data file, checked and split for training.

Kept apart from `fedmodel.client.site` (node config and cap), which the launchers
import, so starting a SuperNode does not load the data libraries.
"""

from __future__ import annotations

import logging

import datasets

from fedmodel.client.site import DATA_FILE, SiteConfig
from fedmodel.config import RunSettings
from fedmodel.data import split_client_data
from fedmodel.data.files import load_site_file
from fedmodel.errors import FedmodelError

log = logging.getLogger(__name__)


def load_site_records(
    settings: RunSettings, site: SiteConfig
) -> tuple[datasets.Dataset, tuple[str, ...]]:
    """The site's training split and the federation's label names.

    The file is read with the run's text and label columns; a share of
    `task.val_fraction` is held out, as a simulated client does. What is
    wrong with a file is logged at the site only; the error raised (which
    reaches the server) names neither rows nor labels.
    """
    labels = settings.task.labels
    if not labels:
        raise FedmodelError(
            "the run-config has no task.labels: in a deployment the server "
            "operator must list the label set every site's file uses"
        )
    label_names = tuple(str(label) for label in labels)
    try:
        records = load_site_file(
            site.data_file,
            task=settings.task,
            label_names=label_names,
            key=f"node config {DATA_FILE}",
        )
        train, _ = split_client_data(
            records,
            client_id=site.site_id,
            val_fraction=settings.task.val_fraction,
            batch_size=settings.finetune.batch_size,
            seed=settings.seed,
        )
    except FedmodelError as exc:
        # The reason can quote the site's rows and labels, and Flower sends an
        # exception's text to the server: it stays in the site's own log.
        log.error("site %d: %s", site.site_id, exc)
        raise FedmodelError(
            f"site {site.site_id} cannot train on its data file; the site's "
            "operator finds the reason in its SuperNode's log"
        ) from None
    return train, label_names
