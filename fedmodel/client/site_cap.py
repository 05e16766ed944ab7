"""A site's epsilon cap below the budgets the budget rule was measured at.

Said once, when `fedmodel supernode` launches the site: each round's log
already says when the cap wins over the server's target. The site does not
know the server's settings at launch, so the line says where they apply.
"""

from __future__ import annotations

from fedmodel.client.site import MAX_EPSILON, SiteConfig, site_setting
from fedmodel.config.budget_table import MEASURED_FROM_EPSILON


def unmeasured_cap(site: SiteConfig) -> str | None:
    """A line for a cap below MEASURED_FROM_EPSILON; None for any other."""
    if site.max_epsilon >= MEASURED_FROM_EPSILON:
        return None
    return (
        f"site {site.site_id}: {site_setting(MAX_EPSILON)} {site.max_epsilon:g} "
        f"is below {MEASURED_FROM_EPSILON:g}, the smallest budget the budget rule "
        "was measured at (docs/strict-budgets.md): in a DP-SGD head run it caps, "
        "the settings the server's config leaves to the rule take the values "
        f"measured at {MEASURED_FROM_EPSILON:g}, and the accuracy they reach at "
        f"{site.max_epsilon:g} is unknown"
    )
