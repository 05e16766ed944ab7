"""What happens after each round, one callback per concern (see `rounds.py`).

Each callback's `after_round(state, metrics)` returns `(stop, metrics)`; the
loop runs them in the order given, and later callbacks see the metrics earlier
ones added. The server's order is: history, checkpoint (`checkpointing.py`),
failures, evaluation, the comparison with the start (`keep_best`, on the
server's split), metrics line, console line, budget stop. The checkpoint comes
before evaluation and the metrics line, so a round whose aggregate was loaded
is never run again after a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fedmodel.config.wording import decimals_up, plural
from fedmodel.federation.messages import ClientFailure
from fedmodel.federation.round_state import RoundState
from fedmodel.federation.spent_budgets import spent_clients
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.run.metrics import append_round
from fedmodel.run.summary import changed_rounds
from fedmodel.training.loops import EvalResult
from fedmodel.training.model_selection import LastRoundOrStart

log = logging.getLogger(__name__)

Result = tuple[bool, dict[str, Any]]


class RoundHistory:
    """Which rounds ran and what each aggregated (kept in the checkpoint)."""

    def __init__(self, rounds: list[dict[str, Any]] | None = None) -> None:
        self.rounds: list[dict[str, Any]] = list(rounds or [])

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Record the round's selected, aggregated and failed counts."""
        self.rounds.append(
            {
                "round": state.round,
                "model": state.model_name,
                "clients_selected": metrics["clients_selected"],
                "clients_aggregated": metrics["clients_aggregated"],
                "clients_failed": metrics["clients_failed"],
                "model_changed": state.released,
            }
        )
        return False, {}

    def completed(self, model_name: str) -> int:
        """Rounds of `model_name` whose aggregate changed the model."""
        return changed_rounds(self.rounds, model_name)


class FailureWatch:
    """Name each failed client once per reason; stop on a failure that lasts.

    A round in which no client returned an update always stops the run, and so
    does one with fewer accepted updates than `min_replies` when clients
    failed or dropped out (a site that did not answer within the round's
    timeout is left out of the round). The round loop did not load such a
    round's aggregate, so a resume runs it again, unless its strategy
    `keeps_short_rounds` (central DP). A permanent failure (the client's
    ledger, data or settings) stops it unless `allow_failed` is set; the
    server then trains on without that client.
    """

    def __init__(self, *, allow_failed: bool, min_replies: int) -> None:
        self.allow_failed = allow_failed
        self.min_replies = min_replies
        self.failures: list[ClientFailure] = []
        self.fatal: str | None = None
        self._named: set[tuple[str, str]] = set()

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Log new (client, reason) pairs and dropouts; decide whether to go on."""
        for failure in state.failures:
            self.failures.append(failure)
            if (failure.who, failure.reason) not in self._named:
                self._named.add((failure.who, failure.reason))
                log.warning(
                    "round %d: %s failed: %s", state.round, failure.who, failure.reason
                )
        if state.failures and not state.aggregated:
            named = "; ".join(f"{f.who}: {f.reason}" for f in state.failures)
            self.fatal = (
                f"round {state.round}: no client returned an update; "
                f"{len(state.failures)} failed ({named}){_run_again(state)}"
            )
            return True, {}
        self.fatal = self._participation(state)
        if self.fatal:
            return True, {}
        lasting = [f for f in state.failures if f.permanent]
        if lasting and not self.allow_failed:
            who = ", ".join(sorted({f.who for f in lasting}))
            self.fatal = (
                f"round {state.round}: {who} failed ({lasting[0].reason}). Fix it "
                "and continue with resume=true, or set "
                "federation.allow_failed_clients=true to train without it"
            )
            return True, {}
        return False, {}

    def _participation(self, state: RoundState) -> str | None:
        """Log the clients that dropped out; the reason to stop below the minimum.

        Only failures and dropouts count against `min_replies`: a round in
        which every selected client answered "budget exhausted" is no failure.
        """
        if state.missing:
            log.warning(
                "%s round %d: %d of %d selected clients did not answer within "
                "federation.round_timeout",
                state.model_name,
                state.round,
                state.missing,
                state.selected,
            )
        if not state.short_of(self.min_replies):
            return None
        accepted = len(state.accepted)
        failures = state.failures
        first = f", the first failure: {failures[0].reason}" if failures else ""
        return (
            f"round {state.round}: {accepted} accepted {plural(accepted, 'update')}, "
            "fewer than "
            f"federation.min_replies={self.min_replies}; {len(failures)} "
            f"failed and {state.missing} did not answer{first}{_run_again(state)}"
        )


def _run_again(state: RoundState) -> str:
    """The stop message's end: whether a resume runs the round again."""
    if state.released:  # privacy=central: its noised model was charged
        return (
            f". Round {state.round}'s noised model is kept, charged to the run's "
            "budget: continue with resume=true to go on after it"
        )
    return (
        f". The model does not hold round {state.round}: continue with "
        "resume=true to run it again"
    )


class Evaluate:
    """Evaluate the global model on the server's test split."""

    def __init__(self, evaluate: Callable[[], EvalResult]) -> None:
        self.evaluate = evaluate
        self.seconds = 0.0
        self.last: EvalResult | None = None

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Add accuracy, macro-F1 and test loss."""
        started = time.perf_counter()
        self.last = self.evaluate()
        self.seconds += time.perf_counter() - started
        return False, {
            "accuracy": self.last.accuracy,
            "macro_f1": self.last.macro_f1,
            "test_loss": self.last.loss,
        }


class CompareWithStart:
    """Score each aggregated model on the server's own split (`keep_best`).

    The selector keeps the last round's model unless the start's loss is lower.

    The split is data the server holds (a transfer or validation split), so
    this is free post-processing; the test split is never read here.
    """

    def __init__(
        self,
        selector: LastRoundOrStart,
        weights: Callable[[], dict[str, torch.Tensor]],
    ) -> None:
        self.selector = selector
        self.weights = weights

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Score the round's model; add which round's model is kept so far."""
        if not state.released:
            return False, {}
        self.selector.offer(state.round, self.weights())
        return False, {"server_validation_kept_round": self.selector.kept_round}


class WriteMetrics:
    """Append the round's figures to metrics.jsonl."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # Each aggregated round's client compute (None: a client withheld it).
        self.round_seconds: list[float | None] = []

    @property
    def client_seconds(self) -> float | None:
        """The clients' compute summed over aggregated rounds; None if unknown.

        Unknown if a round's was withheld (DP) or no round aggregated; a
        round that aggregated nothing adds nothing.
        """
        known = [s for s in self.round_seconds if s is not None]
        if not known or len(known) < len(self.round_seconds):
            return None
        return sum(known)

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Write one line; student rounds are marked `"model": "student"`."""
        seconds = time.perf_counter() - state.started
        record = {**metrics, "seconds": seconds}
        if state.model_name != "teacher":
            record["model"] = state.model_name
        append_round(self.run_dir, record)
        if state.aggregated:
            self.round_seconds.append(metrics["client_compute_seconds"])
        return False, {"seconds": seconds}


class ConsoleLine:
    """One console line per round."""

    def __init__(self, total_rounds: int) -> None:
        self.total_rounds = total_rounds

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Log accuracy, clients aggregated of selected, epsilon and time."""
        epsilon = ""
        if metrics["epsilon_max"] is not None:
            epsilon = (
                f" | epsilon max {decimals_up(metrics['epsilon_max'], 2)} "
                f"mean {decimals_up(metrics['epsilon_mean'], 2)}"
            )
        log.info(
            "%sround %d/%d: test accuracy %.4f macro-F1 %.4f | %d/%d clients%s | "
            "%.1f s",
            "" if state.model_name == "teacher" else f"{state.model_name} ",
            state.round,
            self.total_rounds,
            metrics["accuracy"],
            metrics["macro_f1"],
            metrics["clients_aggregated"],
            metrics["clients_selected"],
            epsilon,
            metrics.get("seconds", time.perf_counter() - state.started),
        )
        return False, {}


class BudgetStop:
    """Stop once every client has spent its privacy budget.

    Clients are counted by client id, from their latest figures: a client
    seen under several node ids (a resume, a reconnected SuperNode) is one.
    A client that failed in the round is not counted: its figures are from
    an earlier reply (or the checkpoint) and say nothing of its budget now (a
    site whose operator reset its ledger, say), so the failure decides the
    round (`FailureWatch`), and a node that failed without naming its client
    could be any of them.
    """

    def __init__(self, strategy: BudgetAwareStrategy, *, num_clients: int) -> None:
        self.strategy = strategy
        self.num_clients = num_clients

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """The stop signal: no client has budget for another round."""
        failed = {failure.client_id for failure in state.failures}
        spent = spent_clients(self.strategy.client_figures) - failed
        if None in failed or len(spent) < self.num_clients:
            return False, {}
        log.warning(
            "%s round %d: every client has spent its privacy budget; stopping",
            state.model_name,
            state.round,
        )
        return True, {}
