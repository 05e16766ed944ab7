"""The simulated clients' records, checked before any Flower start-up.

`fedmodel simulate` calls this before it imports the simulation stack (Flower,
Ray, the apps: about ten seconds), so a client whose records cannot train, or
a `privacy.target_delta` that is not below 1/n for one of them, is reported
in seconds. Nothing here imports Flower or the model libraries.
"""

from __future__ import annotations

from fedmodel.config import RunSettings
from fedmodel.data import load_client_data
from fedmodel.privacy import choose_delta
from fedmodel.privacy.client_level import plan_client_level


def check_simulated_clients(settings: RunSettings) -> None:
    """Refuse a client whose data cannot train or whose delta is not below 1/n."""
    if settings.privacy.client_level:
        plan_client_level(settings)  # a bad central-DP setting stops here
    for client_id in range(settings.num_clients):
        train_split, _, _ = load_client_data(settings, client_id)
        if settings.privacy.record_level:
            choose_delta(
                len(train_split),
                settings.privacy.target_delta,
                client_id=str(client_id),
            )
