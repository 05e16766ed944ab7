"""A deployed site's own records: its data file, checked; every record trains.

Kept apart from `fedmodel.client.site` (node config and cap), which the launchers
import, so starting a SuperNode does not load the data libraries. Those are
imported only when the file is read: a head-mode round whose features are
already in the site's state directory reads neither the file's rows nor them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fedmodel.client.round_records import RoundRecords
from fedmodel.client.site import DATA_FILE, RunRefusal, SiteConfig, site_setting
from fedmodel.client.site_delta import check_site_delta
from fedmodel.config import RunSettings
from fedmodel.data.label_form import composed_labels
from fedmodel.errors import FedmodelError
from fedmodel.training.feature_store import (
    features_path,
    remember_site_features,
    site_features,
    site_file_key,
)
from fedmodel.training.fingerprint import data_fingerprint

if TYPE_CHECKING:
    from fedmodel.data.tokenization import Encoded

log = logging.getLogger(__name__)


def site_round_records(
    settings: RunSettings, site: SiteConfig, *, head_features: bool
) -> RoundRecords:
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
            return RoundRecords(split=stored, label_names=label_names)
    records = load_site_records(settings, site)
    check_site_delta(site, records=len(records.split))
    if file_key is not None:
        path = features_path(
            settings,
            fingerprint=data_fingerprint(records.split),
            state_dir=site.state_dir,
        )
        remember_site_features(site.state_dir, file_key=file_key, path=path)
    return records


def load_site_records(settings: RunSettings, site: SiteConfig) -> RoundRecords:
    """The site's training split, its texts tokenized, and the federation's labels.

    The file is read with the run's text and label columns, and every record
    trains: a run-config holding some out (`task.val_fraction`) is refused
    before this (`check_site_run_config`). What is wrong with a file is logged
    at the site only; the error raised (which reaches the server) names
    neither rows nor labels. So is how many texts `task.max_length` cuts,
    counted from the tokens the round's job then trains or embeds with.
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
    # One query: `train["text"]` is a lazy column, read a record a query
    # (0.25 s of 20,000 records; 0.002 s so).
    encoded = _tokenized_saying_cuts(settings, site, train[:]["text"])
    return RoundRecords(split=train, label_names=label_names, encoded=encoded)


def _tokenized_saying_cuts(
    settings: RunSettings, site: SiteConfig, texts: list[str]
) -> list[Encoded]:
    """The site's texts tokenized for the model; how many are cut, logged at the site.

    The server cannot plan a deployment (`fedmodel privacy-plan` refuses it),
    so the site's operator reads the count here; it is a statistic of the
    site's records, so no reply carries it.
    """
    from fedmodel.data.cut_texts import SplitCut, cut_count, cuts_line
    from fedmodel.data.tokenization import tokenized_with_cuts
    from fedmodel.model.load import load_tokenizer

    length = settings.task.max_length
    tokenizer = load_tokenizer(settings.model)
    encoded, cut = tokenized_with_cuts(tokenizer, texts, max_length=length)
    if cut is None:
        cut = cut_count(tokenizer, texts, max_length=length)
    line = cuts_line(length, [SplitCut(split="training", cut=cut, texts=len(texts))])
    log.info("site %d: %s", site.site_id, line)
    return encoded


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
