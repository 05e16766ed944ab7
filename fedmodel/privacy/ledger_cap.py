"""A ledger's cap: whether a spend stays under it, and the refusal that names it."""

from __future__ import annotations

from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.privacy.ledger_record import LedgerRecord

# Room for floating-point noise in an epsilon that lands exactly on the cap.
EPSILON_SLACK = 1e-9


class BudgetExhausted(FedmodelError):
    """A round would take a client's epsilon above its cap; nothing was charged."""


def within_cap(epsilon: float, cap: float) -> bool:
    """Whether `epsilon` stays at or under `cap`; a NaN epsilon never does."""
    return epsilon <= cap + EPSILON_SLACK


def cap_refusal(
    record: LedgerRecord,
    *,
    round_number: int,
    steps: int,
    before: float,
    after: float,
) -> BudgetExhausted:
    """The refusal of a round whose `steps` would take epsilon `before` to `after`."""
    return BudgetExhausted(
        f"client {record.client_id!r} cannot take part in round "
        f"{round_number}: {steps} more steps would raise its epsilon "
        f"from {decimals_up(before, 4)} to {decimals_up(after, 4)}, "
        f"above its cap {record.target_epsilon:g} (delta "
        f"{record.delta:g}); nothing was charged. Only raise the cap "
        "(privacy.target_epsilon; at a deployed site, its --max-epsilon) "
        "if the site accepts more privacy loss"
    )
