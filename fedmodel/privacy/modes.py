"""Privacy modes: what each `privacy.mode` does on the client, server and summary.

`PRIVACY_MODES` is the registry `privacy.mode` names an entry of (the accepted
names are declared in `fedmodel.config.modes`; a test keeps the two equal).
Code that acts on the mode reads the entry's fields instead of comparing the
mode's name, so a new mode is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedmodel.config import PrivacySettings, RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.privacy.figure_keys import DELTA_KEY, EPSILON_KEY


@dataclass(frozen=True)
class PrivacyMode:
    """One privacy mode, as the client, the server and the run summary see it."""

    name: str
    # The client: plan noise, charge its ledger write-ahead and train with
    # DP-SGD (Opacus) every round.
    client_dpsgd: bool
    # The server: clip each client's update and noise their mean
    # (`federation/central_dp.py`, planned by `privacy/client_level.py`).
    server_noise: bool
    # Whether a client may release its training loss and compute time: they
    # are computed from its records without noise, so only without DP.
    releases_statistics: bool
    # What summary.json's guarantee protects: "record" (each client's
    # records), "client" (each client's whole contribution) or None (no DP).
    guarantee: str | None

    @property
    def enabled(self) -> bool:
        """Whether the mode gives any differential privacy."""
        return self.guarantee is not None


PRIVACY_MODES: dict[str, PrivacyMode] = {
    "off": PrivacyMode(
        name="off",
        client_dpsgd=False,
        server_noise=False,
        releases_statistics=True,
        guarantee=None,
    ),
    "dpsgd": PrivacyMode(
        name="dpsgd",
        client_dpsgd=True,
        server_noise=False,
        releases_statistics=False,
        guarantee="record",
    ),
    "central": PrivacyMode(
        name="central",
        client_dpsgd=False,
        server_noise=True,
        releases_statistics=False,
        guarantee="client",
    ),
}


def privacy_mode(privacy: PrivacySettings) -> PrivacyMode:
    """The registry entry `privacy.mode` names."""
    try:
        return PRIVACY_MODES[privacy.mode]
    except KeyError:
        raise FedmodelError(
            f"privacy.mode must be one of {list(PRIVACY_MODES)}, got {privacy.mode!r}"
        ) from None


def privacy_guarantee(
    settings: RunSettings, clients: dict[int, dict[str, float]]
) -> dict[str, Any]:
    """The run-level statement for summary.json: what is protected, at what cost.

    Record-level: each client's own records, the largest client epsilon.
    Client-level: every client's whole contribution, one epsilon for all.
    `unstated` is None here: `run/summary.py` says in it why a private run
    states no epsilon, where a ledger that holds its charges could not be read.
    """
    privacy = settings.privacy
    level = privacy_mode(privacy).guarantee
    epsilons = [c[EPSILON_KEY] for c in clients.values() if EPSILON_KEY in c]
    deltas = [c[DELTA_KEY] for c in clients.values() if DELTA_KEY in c]
    return {
        "level": level,
        "target_epsilon": privacy.target_epsilon if level else None,
        "epsilon": max(epsilons) if level and epsilons else None,
        "delta": max(deltas) if level and deltas else None,
        "accountant": privacy.accountant if level else None,
        "unstated": None,
    }
