"""A SuperNode's launch refuses a ledger in --state-dir that its rounds would refuse.

A ledger kept for another `--site-id`, or at a delta other than the one the
site's rounds charge at (its `--delta`, or 1/(10 n) of its n records, which
moves when records are added), is refused by every round the site is sent,
after the server has sampled it: each such round fails the run (or trains on
without the site) while the other sites are charged for it. The launch reads
the ledger once and stops with the round's reason and its way out instead.
"""

from __future__ import annotations

import math

from fedmodel.client.site import DELTA, SITE_ID, SiteConfig, site_setting
from fedmodel.config.delta_rule import default_delta
from fedmodel.errors import FedmodelError
from fedmodel.privacy.ledger_record import LEDGER_FILE, read_record


def check_stored_ledger(site: SiteConfig, *, records: int) -> None:
    """Refuse a `--state-dir` whose ledger no round of this site could continue.

    A ledger that cannot be read is left to the round, whose refusal names
    what is wrong with it; a folder without one is said elsewhere.
    """
    path = site.state_dir / LEDGER_FILE
    if not path.is_file():
        return
    try:
        stored = read_record(path)
    except FedmodelError:
        return
    if stored.client_id != str(site.site_id):
        raise FedmodelError(
            f"--state-dir: privacy ledger {path} belongs to site "
            f"{stored.client_id}, not to {site_setting(SITE_ID)} {site.site_id}: "
            "give each site its own --state-dir, or start this one with the "
            f"--site-id that opened the ledger ({stored.client_id})"
        )
    wanted = default_delta(records) if site.delta is None else site.delta
    if math.isclose(stored.delta, wanted, rel_tol=1e-9, abs_tol=0.0):
        return
    source = (
        f"1/(10 n) for the {records} records of its data-file, as no "
        f"{site_setting(DELTA)} is given"
        if site.delta is None
        else f"its {site_setting(DELTA)}"
    )
    raise FedmodelError(
        f"--state-dir: privacy ledger {path} states epsilon at delta "
        f"{stored.delta!r}, but this site's rounds would charge at delta "
        f"{wanted!r} ({source}), and each round would refuse the ledger: give "
        f"--delta {stored.delta!r} to continue this budget, or archive it with "
        f"`fedmodel ledger reset --state-dir {site.state_dir} --yes` to start a "
        "new budget (forgetting the epsilon already spent)"
    )
