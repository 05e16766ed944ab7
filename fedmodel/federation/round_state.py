"""What one round did, as its callbacks see it, and the figures every round records.

The round loop (`rounds.py`) fills a `RoundState` once a round's replies are
aggregated and hands it to each `RoundCallback` in turn (`callbacks.py`,
`checkpointing.py`), with the metrics that `round_figures` starts them from.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from flwr.app import Message, MetricRecord

from fedmodel.federation.messages import ARRAYS_KEY, METRICS_KEY, ClientFailure
from fedmodel.federation.strategy import BudgetAwareStrategy


@dataclass
class RoundState:
    """What one round did, as the callbacks see it."""

    round: int
    model_name: str
    # The train messages sent.
    messages: list[Message]
    # How many of the messages were answered within the round's timeout.
    answered: int
    accepted: list[Message]
    failures: list[ClientFailure]
    train_metrics: MetricRecord | None
    started: float = field(default_factory=time.perf_counter)
    # Selected nodes sent no train message: the ledger query asked before
    # they train refused them (their failures are among `failures`) or they
    # did not answer it.
    held_back: int = 0
    unanswered_queries: int = 0
    # Nodes the ledger query asked while the round's clients were chosen
    # left out of the choice (`client_choice.RoundChoice`): not selected. The
    # refused ones' failures are among `failures`.
    unchosen_unanswered: int = 0
    unchosen_refused: int = 0
    # Selected clients that answered "budget exhausted": charged nothing,
    # trained on nothing, and spent for good (`spent_budgets.py`).
    exhausted: list[int] = field(default_factory=list)
    # The round released a new model: an aggregated update, or under
    # privacy=central noise alone (a draw that took no client is still noised).
    # Not a round short of min_replies: its aggregate is not loaded.
    released: bool = False

    @property
    def aggregated(self) -> bool:
        """Whether any client's update was accepted (`released`: the model changed)."""
        return bool(self.accepted)

    @property
    def failed_unreleased(self) -> bool:
        """Whether clients failed or dropped out and no new model came of it.

        Such a round, no update accepted or fewer than `federation.min_replies`
        (`failed_short_of`), stops the run (`FailureWatch`) and does not count as run:
        a resume runs it again.
        """
        return not self.released and bool(self.failures or self.unanswered)

    def short_of(self, min_replies: int) -> bool:
        """Whether fewer updates than `min_replies` were accepted of those asked for.

        Counted where clients failed, dropped out or answered "budget
        exhausted": such a round's aggregate is not loaded (`rounds.py`). A
        round in which every selected client's update was accepted is not
        short, however few were selected, unless a node failed or did not
        answer the ledger query asked while its clients were chosen.
        """
        lacking = bool(self.failures or self.unanswered or self.exhausted)
        return lacking and len(self.accepted) < min_replies

    def failed_short_of(self, min_replies: int) -> bool:
        """Whether failures or dropouts are among what left it `short_of`.

        Such a round stops the run (`FailureWatch`), and a resume runs it
        again. Where spent budgets alone left it short, no resume could add
        their updates: `BudgetStop` decides whether the run can go on.
        """
        failed = bool(self.failures or self.unanswered)
        return failed and self.short_of(min_replies)

    @property
    def selected(self) -> int:
        """Clients the strategy selected, those held back before training too."""
        return len(self.messages) + self.held_back

    @property
    def missing(self) -> int:
        """Selected clients that did not answer (dropped out or timed out)."""
        return len(self.messages) - self.answered + self.unanswered_queries

    @property
    def selected_failures(self) -> int:
        """Selected clients that failed: not those the client choice left out."""
        return len(self.failures) - self.unchosen_refused

    @property
    def unanswered(self) -> int:
        """Nodes that did not answer: selected clients, and those the choice left out.

        A node silent to the choice's ledger query left fewer clients to draw
        from: where `federation.min_replies` is checked it counts as a
        selected client that dropped out does.
        """
        return self.missing + self.unchosen_unanswered


# What a round callback returns: (stop the loop?, metrics to add).
Result = tuple[bool, dict[str, Any]]


class RoundCallback(Protocol):
    """Called after every round; returns (stop the loop?, metrics to add)."""

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """React to a finished round."""
        ...


def round_figures(state: RoundState, strategy: BudgetAwareStrategy) -> dict[str, Any]:
    """The figures every round records before any callback adds its own."""
    epsilons = strategy.epsilons()
    train_loss = None
    if state.train_metrics is not None:
        train_loss = state.train_metrics.get("train-loss")
    return {
        "round": state.round,
        "train_loss": train_loss,
        "clients_selected": state.selected,
        "clients_aggregated": len(state.accepted),
        "clients_failed": len(state.failures),
        # Added after the keys above, which earlier runs' lines hold too.
        "clients_budget_exhausted": len(state.exhausted),
        "model_changed": state.released,
        "epsilon_max": max(epsilons) if epsilons else None,
        "epsilon_mean": statistics.fmean(epsilons) if epsilons else None,
        "bytes_sent": sum(m.content[ARRAYS_KEY].count_bytes() for m in state.messages),
        "client_compute_seconds": _compute_seconds(state.accepted),
        "bytes_received": sum(
            m.content[ARRAYS_KEY].count_bytes() for m in state.accepted
        ),
        # The selected clients sent a train message, those `bytes_sent` sums
        # over: not those the ledger check held back (`RoundState.held_back`).
        # Added after the keys above, which earlier runs' lines hold too.
        "clients_sent": len(state.messages),
    }


def _compute_seconds(accepted: list[Message]) -> float | None:
    """The accepted updates' summed compute time; None if it is not known.

    A client under DP withholds it (it is computed from its records without
    noise), so a private round's figure is unknown, not 0; so is a round
    that aggregated no update.
    """
    if not accepted:
        return None
    seconds = []
    for reply in accepted:
        value = reply.content.metric_records[METRICS_KEY].get("compute-seconds")
        if not isinstance(value, int | float):
            return None
        seconds.append(float(value))
    return sum(seconds, 0.0)
