"""A client's round, set up from the server's message: settings, folder, records.

What the ClientApp's handlers do before the local round runs: the server's
settings are checked (its version, a site's own settings and agreement)
before anything reads the site's disk, the client's state folder is found,
what a killed round left there is removed, and a site's records for the round
are read. Torch and the data libraries are imported only by the functions
that need them, as `client_app` is imported for every message.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import fedmodel
from fedmodel.client.site import SiteConfig, check_site_run_config
from fedmodel.client.site_agreement import check_site_agreement
from fedmodel.config import RunSettings, from_run_config, settings_from_dict
from fedmodel.config.wording import plural
from fedmodel.federation.messages import CONFIG_KEY, VERSION_KEY, check_server_version
from fedmodel.privacy.durable_file import remove_stale_temp_files
from fedmodel.privacy.ledger_record import LEDGER_FILE
from fedmodel.run.layout import simulated_client_dir

if TYPE_CHECKING:
    from flwr.app import Message

    from fedmodel.client.round_records import RoundRecords

log = logging.getLogger(__name__)

# Keys Flower's strategies add to the train config (the rest is our run-config).
FLOWER_KEYS = ("proximal-mu",)


def round_settings(msg: Message, site: SiteConfig | None) -> tuple[int, RunSettings]:
    """The round number and the server's settings, checked before any is used."""
    config = dict(msg.content[CONFIG_KEY])
    round_number = int(str(config.pop("server-round")))
    check_server_version(config.pop(VERSION_KEY, None))
    for key in FLOWER_KEYS:
        config.pop(key, None)
    raw = from_run_config(config)
    if site is None:
        return round_number, settings_from_dict(raw)
    check_site_run_config(raw, site)  # before anything reads the site's disk
    settings = settings_from_dict(raw)
    check_site_agreement(settings, site)  # before the site's file is read
    return round_number, settings


def client_state_dir(site: SiteConfig | None, run_dir: str, client_id: int) -> Path:
    """Where this client keeps its ledger and caches.

    A site names it in its node config; in simulation it sits in the run folder.
    """
    return simulated_client_dir(run_dir, client_id) if site is None else site.state_dir


def site_records(
    settings: RunSettings, site: SiteConfig, round_number: int, *, distill: bool
) -> RoundRecords:
    """What the site trains on this round (`site_round_records`), said in its log."""
    # Here, not at the top: the feature store imports torch.
    from fedmodel.client.site_data import site_round_records

    # Which code trains on the site's records: with `fedmodel flwr-app`'s
    # bundle, the site's own installed fedmodel.
    log.info(
        "site %d: round %d, fedmodel %s from %s",
        site.site_id,
        round_number,
        fedmodel.__version__,
        Path(fedmodel.__file__).parent,
    )
    # The mode by name, not by the registry (model/finetune.py): that
    # imports transformers, which a site's message process keeps out of
    # its start-up until it trains (test_site_features.py checks it).
    return site_round_records(
        settings, site, head_features=settings.finetune.mode == "head" and not distill
    )


def sweep_temp_files(state_dir: Path, client_id: int) -> None:
    """Remove what a killed round left in the client's folder.

    The ledger's temp files go under its lock; the feature store's once they
    are an hour old (it takes no lock).
    """
    from fedmodel.training.feature_store import sweep_stale_temp_files  # torch

    removed = remove_stale_temp_files(state_dir / LEDGER_FILE)
    if removed:
        log.info(
            "client %d: removed %d stale temp %s",
            client_id,
            len(removed),
            plural(len(removed), "file"),
        )
    sweep_stale_temp_files(state_dir)
