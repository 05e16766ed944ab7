"""The round callback that names failed clients and stops the run on one that lasts.

Its stop line ends with what a resume does: it runs the round again, or goes
on after a round whose noised model was charged (central DP). Where a site
refused a setting the run keeps on resume (its labels, columns or privacy
mode, say), the line advises a new run instead: resumed, the site would
refuse the same again.
"""

from __future__ import annotations

import logging
from typing import Any

from fedmodel.client.site import RunRefusal
from fedmodel.config.wording import plural
from fedmodel.federation.messages import ClientFailure
from fedmodel.federation.round_state import Result, RoundState

log = logging.getLogger(__name__)


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
            named = "; ".join(f"{f.who}: {_quoted(f)}" for f in state.failures)
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
            again = _new_run(lasting) or ". Fix it and continue with resume=true"
            self.fatal = (
                f"round {state.round}: {who} failed ({_quoted(lasting[0])}){again}, "
                "or set federation.allow_failed_clients=true to train without it"
            )
            return True, {}
        return False, {}

    def _participation(self, state: RoundState) -> str | None:
        """Log the clients that dropped out; the reason to stop below the minimum.

        Only failures and dropouts make this stop: a round short for spent
        budgets alone is no failure, and a resume could not add their updates
        (`BudgetStop`, `budget_stop.py`, decides whether the run goes on).
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
        unchosen = _unchosen(state)
        if unchosen:
            left_out = state.unchosen_unanswered + state.unchosen_refused
            log.warning(
                "%s round %d: %s, so %s not selected",
                state.model_name,
                state.round,
                unchosen,
                plural(left_out, "it was", "they were"),
            )
        if not state.failed_short_of(self.min_replies):
            return None
        accepted = len(state.accepted)
        failures = state.failures
        first = f", the first failure: {_quoted(failures[0])}" if failures else ""
        also = f", and {unchosen}" if unchosen else ""
        return (
            f"round {state.round}: {accepted} accepted {plural(accepted, 'update')}, "
            f"fewer than federation.min_replies={self.min_replies}; "
            f"{state.selected_failures} failed and {state.missing} did not answer"
            f"{also}{first}{_run_again(state)}"
        )


def _unchosen(state: RoundState) -> str:
    """The nodes the client choice left out, for a line; "" where there were none.

    The choice asks the ledger query of nodes not heard from yet
    (`client_choice.py`); one that did not answer it, or failed it, was never
    selected, so the counts of selected clients leave it out.
    """
    said = []
    if silent := state.unchosen_unanswered:
        said.append(
            f"{silent} {plural(silent, 'node')} did not answer the ledger query "
            "within federation.round_timeout"
        )
    if refused := state.unchosen_refused:
        nodes = f"{refused} {plural(refused, 'node')}"
        said.append(
            f"{refused} failed it" if said else f"{nodes} failed the ledger query"
        )
    if not said:
        return ""
    return f"{' and '.join(said)} while this round's clients were chosen"


def _quoted(failure: ClientFailure) -> str:
    """A failure's reason as the stop line quotes it.

    Without a site's `RunRefusal.ENDING` (that a resume cannot change the
    setting): the line's own end says so, once for every site that refused.
    """
    if failure.refuses_run:
        return failure.reason.removesuffix(RunRefusal.ENDING)
    return failure.reason


def _run_again(state: RoundState) -> str:
    """The stop message's end: whether a resume runs the round again."""
    if (new_run := _new_run(state.failures)) is not None:
        return new_run
    if state.released:  # privacy=central: its noised model was charged
        return (
            f". Round {state.round}'s noised model is kept, charged to the run's "
            "budget: continue with resume=true to go on after it"
        )
    return (
        f". The model does not hold round {state.round}: continue with "
        "resume=true to run it again"
    )


def _new_run(failures: list[ClientFailure]) -> str | None:
    """The stop message's end where a site refused a setting a resume keeps.

    Such as the run's labels or privacy mode (`client.site.RunRefusal`): a
    resume is not advised. None where no failure is such a refusal.
    """
    sites = list(dict.fromkeys(f.who for f in failures if f.refuses_run))
    if not sites:
        return None
    return (
        f". A resume keeps the settings {', '.join(sites)} "
        f"{plural(len(sites), 'refuses', 'refuse')}: start a new run, in a new "
        "run-dir, with settings the sites accept"
    )
