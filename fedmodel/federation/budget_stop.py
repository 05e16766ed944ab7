"""The round callback that ends a run once too few clients have budget left.

With fewer clients left than `federation.min_replies`, no round can be kept
again (`RoundState.short_of`): a spent budget stays spent, so a resume could
not add their updates either. The run then ends as one whose every client is
spent does, "ok" with the model of the rounds kept, and says why.
"""

from __future__ import annotations

import logging
from typing import Any

from fedmodel.config.wording import plural
from fedmodel.federation.round_state import Result, RoundState
from fedmodel.federation.spent_budgets import spent_clients
from fedmodel.federation.strategy import BudgetAwareStrategy

log = logging.getLogger(__name__)


class BudgetStop:
    """Stop once fewer clients than `min_replies` have privacy budget left.

    Clients are counted by client id, from their latest figures: a client
    seen under several node ids (a resume, a reconnected SuperNode) is one.
    A client that failed in the round is not counted: its figures are from
    an earlier reply (or the checkpoint) and say nothing of its budget now (a
    site whose operator reset its ledger, say), so the failure decides the
    round (`FailureWatch`), and a node that failed without naming its client
    could be any of them. With some clients left, `ended` says why the run
    ended, for its final line.
    """

    def __init__(
        self,
        strategy: BudgetAwareStrategy,
        *,
        num_clients: int,
        min_replies: int,
        last_round: int,
    ) -> None:
        self.strategy = strategy
        self.num_clients = num_clients
        self.min_replies = min_replies
        # The loop's last round: a resume with a lower min_replies runs those
        # after the one that ended the run.
        self.last_round = last_round
        self.ended: str | None = None

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """The stop signal: too few clients have budget for a round to be kept."""
        failed = {failure.client_id for failure in state.failures}
        spent = spent_clients(self.strategy.client_figures) - failed
        left = self.num_clients - len(spent)
        if None in failed or left >= self.min_replies:
            return False, {}
        if left <= 0:
            log.warning(
                "%s round %d: every client has spent its privacy budget; stopping",
                state.model_name,
                state.round,
            )
            return True, {}
        self.ended = self._too_few_left(state, sorted(spent), left)
        log.warning("%s", self.ended)
        return True, {}

    def _too_few_left(self, state: RoundState, spent: list[int], left: int) -> str:
        """Why the run ends with `left` clients of budget: round, clients, what next."""
        accepted, count = len(state.accepted), len(spent)
        said = (
            f"{state.model_name} round {state.round}: {accepted} accepted "
            f"{plural(accepted, 'update')}, and {plural(count, 'client')} "
            f"{', '.join(str(client) for client in spent)} "
            f"{plural(count, 'has', 'have')} spent {plural(count, 'its', 'their')} "
            f"privacy budget: {left} of {self.num_clients} clients "
            f"{plural(left, 'has', 'have')} budget left, fewer than "
            f"federation.min_replies={self.min_replies}, so no later round can "
            "be kept, and no resume can make one (a spent budget stays spent)"
        )
        if not state.released:
            said += f"; round {state.round} is not kept"
        said += ". The run ends with the model of the rounds kept: its result"
        if state.round < self.last_round:
            after = state.round + 1
            rounds = f"rounds {after}-{self.last_round}"
            said += (
                f", or continue with resume=true federation.min_replies={left} to "
                f"run {rounds if after < self.last_round else f'round {after}'} "
                f"with the {plural(left, 'client')} left"
            )
        return said
