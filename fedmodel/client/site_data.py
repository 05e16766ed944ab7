"""A deployed site's own records: its data file, checked; every record trains.

Kept apart from `fedmodel.client.site` (node config and cap), which the launchers
import, so starting a SuperNode does not load the data libraries. Those are
imported only when the file is read: a head-mode round whose features are
already in the site's state directory reads neither the file's rows nor them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fedmodel.client.site import DATA_FILE, RunRefusal, SiteConfig, site_setting
from fedmodel.client.site_delta import check_site_delta
from fedmodel.config import RunSettings
from fedmodel.data.label_form import composed_labels
from fedmodel.errors import FedmodelError
from fedmodel.training.feature_store import (
    StoredFeatures,
    features_path,
    remember_site_features,
    site_features,
    site_file_key,
)
from fedmodel.training.fingerprint import data_fingerprint

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)


def site_round_records(
    settings: RunSettings, site: SiteConfig, *, head_features: bool
) -> tuple[datasets.Dataset | StoredFeatures, tuple[str, ...]]:
    """What the site trains on this round, and the federation's label names.

    With `head_features` (a head-mode fine-tuning round) the features a
    previous round stored for this exact file and these settings are used
    when present; otherwise the file is read and, in head mode, its features
    are noted for the next round (the round stores them when it embeds).
    """
    label_names = _label_names(settings)
    readable = head_features and site.data_file.is_file()
    file_key = site_file_key(settings, site.data_file) if readable else None
    if file_key is not None:
        stored = site_features(site.state_dir, file_key=file_key)
        if stored is not None:
            log.info("site %d: training on its stored features", site.site_id)
            check_site_delta(site, records=len(stored))
            return stored, label_names
    train, _ = load_site_records(settings, site)
    check_site_delta(site, records=len(train))
    if file_key is not None:
        path = features_path(
            settings, fingerprint=data_fingerprint(train), state_dir=site.state_dir
        )
        remember_site_features(site.state_dir, file_key=file_key, path=path)
    return train, label_names


def load_site_records(
    settings: RunSettings, site: SiteConfig
) -> tuple[datasets.Dataset, tuple[str, ...]]:
    """The site's training split and the federation's label names.

    The file is read with the run's text and label columns, and every record
    trains: a run-config holding some out (`task.val_fraction`) is refused
    before this (`check_site_run_config`). What is wrong with a file is logged
    at the site only; the error raised (which reaches the server) names
    neither rows nor labels. So is how many texts `task.max_length` cuts.
    """
    from fedmodel.data.files import load_site_file

    label_names = _label_names(settings)
    try:
        train = load_site_file(
            site.data_file,
            task=settings.task,
            label_names=label_names,
            key=site_setting(DATA_FILE),
        )
    except Exception as exc:  # noqa: BLE001 - any reader's error may quote a row
        # The reason can quote the site's rows and labels (a FedmodelError's
        # or a codec's or parser's), and Flower sends an exception's text to
        # the server: it stays in the site's own log.
        ours = isinstance(exc, FedmodelError)
        log.error("site %d: %s", site.site_id, exc, exc_info=not ours)
        raise FedmodelError(
            f"site {site.site_id} cannot train on its data file; the site's "
            "operator finds the reason in its SuperNode's log"
        ) from None
    _say_cut_texts(settings, site, train["text"])
    return train, label_names


def _say_cut_texts(settings: RunSettings, site: SiteConfig, texts: list[str]) -> None:
    """Log how many of the site's texts `task.max_length` cuts, at the site only.

    The server cannot plan a deployment (`fedmodel privacy-plan` refuses it),
    so the site's operator reads it here; it is a statistic of the site's
    records, so no reply carries it.
    """
    from fedmodel.data.cut_texts import SplitCut, cut_count, cuts_line
    from fedmodel.model.load import load_tokenizer

    length = settings.task.max_length
    cut = cut_count(load_tokenizer(settings.model), texts, max_length=length)
    line = cuts_line(length, [SplitCut(split="training", cut=cut, texts=len(texts))])
    log.info("site %d: %s", site.site_id, line)


def _label_names(settings: RunSettings) -> tuple[str, ...]:
    labels = settings.task.labels
    if not labels:
        raise RunRefusal(
            "the run-config has no task.labels: in a deployment the server "
            "operator must list the label set every site's file uses"
        )
    # In the composed form the server's names are in: a decomposed `é` would
    # otherwise print, and be kept, differently at the site.
    return composed_labels(labels)
