"""A client's default delta, and when a delta is too weak to protect anyone.

Kept apart from `fedmodel.privacy.calibration`, which loads Opacus: `fedmodel
supernode` says a site's weak delta at launch with these, and its launch path
imports neither Opacus nor torch.
"""

from __future__ import annotations

from fedmodel.config.wording import plural, three_digits_up

# Above this delta, the chance that a guarantee fails outright is too high for
# it to protect anyone (`weak_delta_warning` says so).
WEAK_DELTA = 1e-3


def default_delta(n: int) -> float:
    """The delta for `n` records (clients, for client-level DP) when none is set."""
    return 1.0 / (10 * n)


def below_one_over_n(delta: float, n: int) -> bool:
    """Whether `delta` is in (0, 1/n), the only deltas a client or site may use.

    A delta of 1/n or more would allow releasing a whole record outright.
    One rule for a run's clients (`privacy.client_plan.choose_delta`) and a
    site's launch (`client.site_delta`), so a launch accepts no delta that
    every round of the site would then refuse.
    """
    return 0.0 < delta < 1.0 / n


def delta_or_default(delta: float | None, n: int) -> float:
    """`delta`, or the default for `n` records where none is set (a site's rounds)."""
    return default_delta(n) if delta is None else delta


def weak_delta_warning(
    delta: float,
    *,
    who: str,
    n: int,
    client_level: bool = False,
    site_option: str | None = None,
) -> str | None:
    """What to say when `delta` is above `WEAK_DELTA`; None when it is not.

    The default 1/(10 n) is that weak for a client of fewer than 100 records
    (client-level DP: fewer than 100 clients). Said, never changed: the
    default and every noise calibrated with it stay as they are. `n` is the
    client's records, or with `client_level` the number of clients. A
    deployed site passes its own delta option as `site_option`, named instead
    of `privacy.target_delta`, which never reaches a site.
    """
    if delta <= WEAK_DELTA:
        return None
    if site_option is not None:
        held = f"{n} {plural(n, 'record')}"
        fix = f"set {site_option} to 1e-5"
        bound = "below 1/n, n the site's records"
    elif client_level:
        held = f"{n} {plural(n, 'client')}"
        fix = "set privacy.target_delta=1e-5"
        bound = f"below 1/{n}, one over the number of clients"
    else:
        held = f"{n} {plural(n, 'record')}"
        fix = "set privacy.target_delta=1e-5 (at a deployed site, its --delta 1e-5)"
        bound = "below 1/n for every client, n its records"
    stated = three_digits_up(delta)
    return (
        f"{who} ({held}): delta {stated} is above {WEAK_DELTA:g}, so its "
        f"epsilon may fail to hold with probability up to {stated}. For a "
        f"meaningful guarantee {fix}: a fixed delta must be {bound}"
    )
