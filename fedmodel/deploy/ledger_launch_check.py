"""A SuperNode's launch refuses a ledger in --state-dir that its rounds would refuse.

A ledger that cannot be read, one kept for another `--site-id`, or one at a
delta other than the one the site's rounds charge at (its `--delta`, or
1/(10 n) of its n records, which moves when records are added), is refused
by every round the site is sent, after the server has sampled it: each such
round fails the run (or trains on without the site) while the other sites
are charged for it. The launch reads the ledger once and stops with the
round's own refusal instead.
"""

from __future__ import annotations

from fedmodel.client.site import DELTA, SiteConfig, site_setting
from fedmodel.config.delta_rule import delta_or_default
from fedmodel.errors import FedmodelError
from fedmodel.privacy.ledger_record import LEDGER_FILE, read_record
from fedmodel.privacy.ledger_reopen import check_same_client, check_same_delta


def check_stored_ledger(site: SiteConfig, *, records: int) -> None:
    """Refuse a `--state-dir` whose ledger no round of this site could continue.

    A ledger that cannot be read, another site's, or one at another delta is
    refused; a folder without one is said elsewhere.
    """
    path = site.state_dir / LEDGER_FILE
    if not path.is_file():
        return
    delta = delta_or_default(site.delta, records)
    source = (
        f"1/(10 n) for the {records} records of its data-file, as no "
        f"{site_setting(DELTA)} is given"
        if site.delta is None
        else f"its {site_setting(DELTA)}"
    )
    try:
        stored = read_record(path)
        check_same_client(path, stored=stored, client_id=str(site.site_id))
        check_same_delta(path, stored=stored, delta=delta)
    except FedmodelError as exc:
        raise FedmodelError(
            f"--state-dir: each round of site {site.site_id} (delta {delta!r}: "
            f"{source}) would refuse its ledger: {exc}"
        ) from None
