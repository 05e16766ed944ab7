"""The one round loop, for the teacher's rounds and the student's alike.

Each round: ask the strategy whom to train (under `strategy.fraction_train`
below 1, a share of them drawn by client id: `client_choice.py`), check their
privacy ledgers against the server's record where the run asks
(`ledger_query.py`), send the train messages to the nodes that pass,
aggregate, load the aggregate (not one short of `federation.min_replies`:
`run_rounds`), then ask each callback, in order, `after_round(state,
metrics)` for `(stop, metrics)`, as pfl-research's `FederatedAlgorithm.run`
does (the state and the round's figures: `round_state.py`). What a round
leaves behind (checkpoint, evaluation, metrics line, console line, the budget
and failure stops) is one callback each, in `federation/callbacks.py`.
A Ctrl-C (`run/stop_request.py`) stops the loop before a round starts,
before its train messages go out (each charges its client's ledger; the
choice and the ledger query before them take a round trip), and before a
round's replies are taken: the interrupt may have ended the clients that
sent them, and an aggregated round is one a resume would not run again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from fedmodel.config.wording import plural
from fedmodel.federation.client_choice import RoundChoice, choose_clients
from fedmodel.federation.ledger_query import check_ledgers
from fedmodel.federation.round_state import RoundCallback, RoundState, round_figures
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.run.stop_request import check_not_stopped

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundPlan:
    """Which rounds to run, on what, and what travels beside the weights."""

    rounds: range
    model_name: str
    train_config: ConfigRecord
    timeout: float
    # The run's num_clients: a deployment's sites (the budget stop counts them).
    num_clients: int
    # `federation.min_replies`: a round left with fewer accepted updates by
    # failures, dropouts or spent budgets is not loaded (`RoundState.short_of`).
    min_replies: int
    # Records added to every train message (the teacher's weights in
    # federated distillation).
    extra: dict[str, ArrayRecord] = field(default_factory=dict)
    # Check each selected node's privacy ledger against the server's record
    # before it trains, in rounds where the server recorded what clients
    # spent (record-level DP: `ledger_query.py`).
    check_ledgers: bool = False


def run_rounds(
    grid: Grid,
    *,
    strategy: BudgetAwareStrategy,
    arrays: ArrayRecord,
    plan: RoundPlan,
    load: Callable[[ArrayRecord], None],
    callbacks: Sequence[RoundCallback],
) -> None:
    """Run `plan.rounds` until they are done or a callback says stop.

    `load` puts each new aggregate into the server's model before the
    callbacks run: the model `load` fills holds the result, and the next
    round sends the latest aggregate. An aggregate of fewer updates than
    `plan.min_replies`, where clients failed, dropped out or answered "budget
    exhausted", is not loaded unless the strategy `keeps_short_rounds` (central DP).
    Raises RunStopped after a Ctrl-C.
    """
    for server_round in plan.rounds:
        check_not_stopped(f"{plan.model_name} round {server_round}")
        started = time.perf_counter()
        choice = _select(grid, strategy, arrays, plan=plan, server_round=server_round)
        if not choice.messages and not strategy.empty_round:
            _say_no_client_left(plan, server_round)
            break
        if server_round == plan.rounds[0] and choice.messages:
            check_selected_count(plan, len(choice.messages))
            if plan.model_name == "teacher":
                _say_first_round(server_round, len(choice.messages))
        messages, replies, unanswered = _send(
            grid, strategy, choice.messages, plan=plan, server_round=server_round
        )
        check_not_stopped(f"{plan.model_name} round {server_round}'s replies")
        new_arrays, train_metrics, accepted = _aggregate(
            strategy, server_round, replies
        )
        state = RoundState(
            round=server_round,
            model_name=plan.model_name,
            messages=messages,
            answered=len(replies),
            accepted=accepted,
            failures=list(strategy.round_failures),
            train_metrics=train_metrics,
            started=started,
            held_back=len(choice.messages) - len(messages),
            unanswered_queries=unanswered,
            unchosen_unanswered=choice.unanswered,
            unchosen_refused=choice.refused,
            exhausted=list(strategy.round_spent),
        )
        # A round short of min_replies is loaded only under central DP, whose noised
        # model was charged: elsewhere a failed one is run again on resume
        # (`failed_unreleased`), one short of spent budgets passed over (`BudgetStop`).
        keep = strategy.keeps_short_rounds or not state.short_of(plan.min_replies)
        if new_arrays is not None and keep:
            arrays, state.released = new_arrays, True
            load(arrays)
        if _ask_callbacks(callbacks, state, round_figures(state, strategy)):
            break


def check_selected_count(plan: RoundPlan, selected: int) -> None:
    """Warn when a plan's first round selects more nodes than `num_clients`.

    A deployment trains every connected site the strategy samples, so a
    SuperNode beyond num_clients trains too (a simulation's node count is
    checked at start-up).
    """
    if selected <= plan.num_clients:
        return
    log.warning(
        "%s round %d: %d nodes were selected to train, but num_clients is %d: "
        "every connected SuperNode the strategy samples trains, and the budget "
        "stop counts num_clients spent clients (under privacy=central, the "
        "updates' sum is divided by strategy.fraction_train x num_clients, so "
        "every extra update adds to the step). Set "
        "num_clients=%d, or stop the SuperNodes that should not take part",
        plan.model_name,
        plan.rounds[0],
        selected,
        plan.num_clients,
        selected,
    )


def _say_no_client_left(plan: RoundPlan, server_round: int) -> None:
    log.warning(
        "%s round %d: no client is left to train (budgets spent or clients "
        "failed); stopping",
        plan.model_name,
        server_round,
    )


def _say_first_round(server_round: int, clients: int) -> None:
    # The console's next line comes only after this round, its slowest.
    log.info(
        "round %d: %d %s training; in its first round of a run a client "
        "also loads its records (and, in head mode, embeds them), which "
        "takes longer than the rounds after it",
        server_round,
        clients,
        plural(clients, "client"),
    )


def _select(
    grid: Grid,
    strategy: BudgetAwareStrategy,
    arrays: ArrayRecord,
    *,
    plan: RoundPlan,
    server_round: int,
) -> RoundChoice:
    """The round's train messages, to the clients chosen; the nodes left out.

    The strategy offers the nodes with budget left; under a `ClientChoice`
    a share of their clients is drawn (`client_choice.py`).
    """
    offered = strategy.configure_train(server_round, arrays, plan.train_config, grid)
    return choose_clients(
        grid,
        strategy,
        offered,
        server_round=server_round,
        train_config=plan.train_config,
        timeout=plan.timeout,
    )


def _send(
    grid: Grid,
    strategy: BudgetAwareStrategy,
    selected: list[Message],
    *,
    plan: RoundPlan,
    server_round: int,
) -> tuple[list[Message], list[Message], int]:
    """Send the round's train messages: those sent, their replies, unanswered queries.

    With `plan.check_ledgers`, in a round where the server recorded what
    clients spent, each message carries its node's recorded figures or goes
    only to a node whose answer to a ledger query passed; the count is of
    nodes that did not answer that query.
    """
    messages, unanswered = selected, 0
    if plan.check_ledgers and strategy.client_figures:
        messages, unanswered = check_ledgers(
            grid,
            strategy,
            selected,
            server_round=server_round,
            train_config=plan.train_config,
            timeout=plan.timeout,
        )
    for message in messages:
        for key, record in plan.extra.items():
            message.content[key] = record
    if not messages:
        return [], [], unanswered
    check_not_stopped(f"{plan.model_name} round {server_round}'s train messages")
    replies = list(grid.send_and_receive(messages, timeout=plan.timeout))
    return messages, replies, unanswered


def _aggregate(
    strategy: BudgetAwareStrategy, server_round: int, replies: list[Message]
) -> tuple[ArrayRecord | None, MetricRecord | None, list[Message]]:
    """The strategy's aggregate, None where it is not finite (the model stays).

    Updates near float32's largest value sum past it: a median of two was inf.
    """
    arrays, metrics, accepted = strategy.aggregate_train(server_round, replies)
    if arrays is None or all(np.isfinite(a.numpy()).all() for a in arrays.values()):
        return arrays, metrics, accepted
    log.warning(
        "round %d: the aggregate of %d updates is not finite (their weights sum "
        "past float32's range); the model is left as it was",
        server_round,
        len(accepted),
    )
    return None, metrics, accepted


def _ask_callbacks(
    callbacks: Sequence[RoundCallback], state: RoundState, metrics: dict[str, Any]
) -> bool:
    stop = False
    for callback in callbacks:
        wants_stop, added = callback.after_round(state, metrics)
        metrics.update(added)
        stop = stop or wants_stop
    return stop
