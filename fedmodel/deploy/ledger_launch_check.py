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

from pathlib import Path

from fedmodel.client.site import DELTA, MAX_EPSILON, SiteConfig, site_setting
from fedmodel.config.delta_rule import delta_or_default
from fedmodel.config.wording import decimals_up, plural
from fedmodel.errors import FedmodelError
from fedmodel.privacy.ledger_cap import within_cap
from fedmodel.privacy.ledger_record import LEDGER_FILE, LedgerRecord, read_record
from fedmodel.privacy.ledger_reopen import check_same_client, check_same_delta


def check_stored_ledger(site: SiteConfig, *, records: int) -> None:
    """Refuse a `--state-dir` whose ledger no round of this site could continue.

    A ledger that cannot be read, another site's, one at another delta, or
    one that has spent more than the site's cap is refused; a folder without
    one is said elsewhere.
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
    check_cap_above_spent(site, path=path, stored=stored)


def check_cap_above_spent(
    site: SiteConfig, *, path: Path, stored: LedgerRecord
) -> None:
    """Refuse a `--max-epsilon` below the epsilon the ledger has already spent.

    A ledger never goes back, so such a site would answer "budget exhausted"
    to every round. The figure is stated rounded up, as `fedmodel ledger
    show` states it: a cap at that figure is at or above what was spent.
    """
    spent = stored.spent_epsilon
    if within_cap(spent, site.max_epsilon):
        return
    rounds = len(stored.rounds)
    shown = decimals_up(spent, 4)
    raise FedmodelError(
        f"{site_setting(MAX_EPSILON)} {site.max_epsilon:g} is below the epsilon "
        f"{shown} that site {site.site_id}'s ledger {path} has already spent (at "
        f"delta {stored.delta:g}, in {rounds} {plural(rounds, 'round')}): a "
        "ledger never goes back, so every round the site is sent would find its "
        f"budget exhausted. Give --max-epsilon {shown} or more, only if the site "
        "accepts that privacy loss (it trains again only in rounds that leave "
        "room under the cap), or, only for new records that the spent budget "
        "did not cover, archive the ledger with `fedmodel ledger reset "
        f"--state-dir {path.parent} --yes` to start a new budget"
    )
