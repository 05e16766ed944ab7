"""What happens after each round, one callback per concern (see `rounds.py`).

Each callback's `after_round(state, metrics)` returns `(stop, metrics)`; the
loop runs them in the order given, and later callbacks see the metrics earlier
ones added. The server's order is: history, checkpoint (`checkpointing.py`),
failures (`failure_watch.py`), evaluation, the comparison with the start
(`keep_best`, on the server's split), metrics line, console line, budget
stop (`budget_stop.py`). The checkpoint comes before evaluation and the
metrics line, so a round whose aggregate was loaded is never run again after
a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fedmodel.config.wording import decimals_up, plural
from fedmodel.federation.round_state import Result, RoundState
from fedmodel.run.metrics import append_round
from fedmodel.run.summary import changed_rounds
from fedmodel.training.loops import EvalResult
from fedmodel.training.model_selection import LastRoundOrStart

log = logging.getLogger(__name__)


class RoundHistory:
    """Which rounds ran and what each aggregated (kept in the checkpoint)."""

    def __init__(self, rounds: list[dict[str, Any]] | None = None) -> None:
        self.rounds: list[dict[str, Any]] = list(rounds or [])

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Record the round's counts and whether its model changed.

        `clients_budget_exhausted` and `model_changed` are metrics.jsonl's keys:
        a round left short of `federation.min_replies` by spent budgets says so.
        """
        self.rounds.append(
            {
                "round": state.round,
                "model": state.model_name,
                "clients_selected": metrics["clients_selected"],
                "clients_aggregated": metrics["clients_aggregated"],
                "clients_failed": metrics["clients_failed"],
                "clients_budget_exhausted": len(state.exhausted),
                "model_changed": state.released,
            }
        )
        return False, {}

    def completed(self, model_name: str) -> int:
        """Rounds of `model_name` whose aggregate changed the model."""
        return changed_rounds(self.rounds, model_name)


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

    def __init__(self, total_rounds: int, *, min_replies: int) -> None:
        self.total_rounds = total_rounds
        self.min_replies = min_replies

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Log accuracy, clients (why not all were accepted), epsilon and time."""
        epsilon = ""
        if metrics["epsilon_max"] is not None:
            epsilon = (
                f" | epsilon max {decimals_up(metrics['epsilon_max'], 2)} "
                f"mean {decimals_up(metrics['epsilon_mean'], 2)}"
            )
        log.info(
            "%sround %d/%d: test accuracy %.4f macro-F1 %.4f | %s%s | %.1f s",
            "" if state.model_name == "teacher" else f"{state.model_name} ",
            state.round,
            self.total_rounds,
            metrics["accuracy"],
            metrics["macro_f1"],
            _clients_said(state, min_replies=self.min_replies),
            epsilon,
            metrics.get("seconds", time.perf_counter() - state.started),
        )
        return False, {}


def _clients_said(state: RoundState, *, min_replies: int) -> str:
    """The round's clients: updates accepted of selected, and why not all were.

    Before, a round that spent budgets or lost clients read "1/2 clients"
    whether or not its model changed. Nodes the client choice left out were
    not selected: the failure watch's line names them.
    """
    accepted, selected = len(state.accepted), state.selected
    spent, missing = len(state.exhausted), state.missing
    failed = state.selected_failures
    reasons = []
    if spent:
        budgets = plural(spent, "client's budget", "clients' budgets")
        reasons.append(f"{spent} {budgets} spent")
    if failed:
        reasons.append(f"{failed} failed")
    if missing:
        reasons.append(f"{missing} did not answer")
    if state.released and not reasons:
        return f"{accepted}/{selected} clients"
    updates = plural(selected, "client's update", "clients' updates")
    said = ", ".join([f"{accepted} of {selected} {updates} accepted", *reasons])
    if state.released:
        return said
    if accepted and state.short_of(min_replies):
        said += f"; below federation.min_replies={min_replies},"
    else:
        said += ";"
    return f"{said} the model is unchanged"
