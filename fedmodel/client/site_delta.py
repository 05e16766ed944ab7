"""A site's own delta: refused at 1/n or above, said when above 1e-3.

Both name the site's `--delta`, never the server's `privacy.target_delta`,
which does not reach a site. `fedmodel supernode` checks both at launch,
so nothing here imports Opacus or torch.
"""

from __future__ import annotations

from fedmodel.client.site import DATA_FILE, DELTA, SiteConfig, site_setting
from fedmodel.config.delta_rule import (
    below_one_over_n,
    delta_or_default,
    weak_delta_warning,
)
from fedmodel.errors import FedmodelError


def check_site_delta(site: SiteConfig, *, records: int) -> None:
    """Refuse a site's `delta` not below 1/n for its `records` records.

    Checked at launch and in each round (the file may have changed): it names
    the site's own setting, not `privacy.target_delta`, which never reaches it.
    """
    if site.delta is not None and not below_one_over_n(site.delta, records):
        raise FedmodelError(
            f"{site_setting(DELTA)}: {site.delta:g} is not below 1/n = "
            f"1/{records} for the {records} records of the site's {DATA_FILE}: "
            "give a smaller delta, or none for 1/(10 n)"
        )


def site_delta_warning(
    site_id: int, *, delta: float | None, records: int
) -> str | None:
    """The weak-delta warning as a site's operator reads it, or None.

    A `delta` of None is the default the site's round takes for `records`
    records, 1 / (10 n).
    """
    return weak_delta_warning(
        delta_or_default(delta, records),
        who=f"site {site_id}",
        n=records,
        site_option=site_setting(DELTA),
    )
