"""Server-side aggregation: Flower strategies by config name, made budget-aware.

The wrapper knows which clients have spent their privacy budget and stops
sampling them; it does not know how their updates were noised (privacy stays
on the client), and it checks every reply holds weights and numbers only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    Strategy,
)

from fedmodel.config import StrategySettings
from fedmodel.errors import FedmodelError

log = logging.getLogger(__name__)

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
EXHAUSTED_KEY = "budget-exhausted"
CLIENT_ID_KEY = "client-id"
NUM_EXAMPLES_KEY = "num-examples"
# In federated distillation rounds the teacher's weights travel beside the
# student's (ARRAYS_KEY).
TEACHER_KEY = "teacher"


def _sampling(settings: StrategySettings, nodes: int) -> dict[str, Any]:
    """Client-sampling arguments shared by all strategies.

    Client-side evaluation stays off (fraction_evaluate=0): it would touch
    client records outside the DP budget; the server evaluates on its own split.
    """
    if not 0.0 < settings.fraction_train <= 1.0:
        raise FedmodelError(
            f"strategy.fraction_train must be in (0, 1], got {settings.fraction_train}"
        )
    minimum = min(settings.min_train_clients, nodes)
    return {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": 0.0,
        "min_train_nodes": minimum,
        "min_available_nodes": minimum,
    }


def _fedavg(settings: StrategySettings, nodes: int) -> Strategy:
    return FedAvg(**_sampling(settings, nodes))


def _fedprox(settings: StrategySettings, nodes: int) -> Strategy:
    return FedProx(**_sampling(settings, nodes), proximal_mu=settings.proximal_mu)


def _fedadam(settings: StrategySettings, nodes: int) -> Strategy:
    return FedAdam(
        **_sampling(settings, nodes),
        eta=settings.eta,
        eta_l=settings.eta_l,
        beta_1=settings.beta_1,
        beta_2=settings.beta_2,
        tau=settings.tau,
    )


def _median(settings: StrategySettings, sampling: dict[str, Any]) -> Strategy:
    return FedMedian(**sampling)


def _trimmed_mean(settings: StrategySettings, sampling: dict[str, Any]) -> Strategy:
    if not 0.0 <= settings.trim_beta < 0.5:
        raise FedmodelError(
            f"strategy.trim_beta must be in [0, 0.5), got {settings.trim_beta}"
        )
    return FedTrimmedAvg(**sampling, beta=settings.trim_beta)


# Against a poisoned site: the coordinate-wise median, or the mean after
# cutting the `trim_beta` share of largest and smallest values.
ROBUST_METHODS: dict[str, Callable[[StrategySettings, dict[str, Any]], Strategy]] = {
    "median": _median,
    "trimmed_mean": _trimmed_mean,
}


def _robust(settings: StrategySettings, nodes: int) -> Strategy:
    method = ROBUST_METHODS.get(settings.robust_method)
    if method is None:
        raise FedmodelError(
            f"strategy.robust_method {settings.robust_method!r} is unknown; choose "
            f"one of {sorted(ROBUST_METHODS)}"
        )
    return method(settings, _sampling(settings, nodes))


STRATEGIES: dict[str, Callable[[StrategySettings, int], Strategy]] = {
    "fedavg": _fedavg,
    "fedprox": _fedprox,
    "fedadam": _fedadam,
    "robust": _robust,
}


def build_strategy(settings: StrategySettings, *, num_clients: int) -> Strategy:
    """The Flower strategy named by `strategy.name`."""
    try:
        factory = STRATEGIES[settings.name]
    except KeyError:
        raise FedmodelError(
            f"strategy.name {settings.name!r} is unknown; choose one of "
            f"{sorted(STRATEGIES)}"
        ) from None
    return factory(settings, num_clients)


class BudgetAwareStrategy:
    """Delegate to a Flower strategy, skipping clients whose budget is spent."""

    def __init__(
        self, inner: Strategy, *, expected_shapes: dict[str, tuple[int, ...]]
    ) -> None:
        self.inner = inner
        self.expected_shapes = expected_shapes
        self.exhausted_nodes: set[int] = set()
        # The latest figures each client reported, by client id.
        self.client_figures: dict[int, dict[str, float]] = {}

    def for_other_weights(
        self, inner: Strategy, *, expected_shapes: dict[str, tuple[int, ...]]
    ) -> BudgetAwareStrategy:
        """A wrapper for another model's weights that shares this one's budget state.

        Federated distillation trains the student with its own aggregation
        state, but a client that spent its budget on the teacher stays spent,
        and its latest figures stay in one place.
        """
        other = BudgetAwareStrategy(inner, expected_shapes=expected_shapes)
        other.exhausted_nodes = self.exhausted_nodes
        other.client_figures = self.client_figures
        return other

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """The inner strategy's train messages, minus spent clients."""
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        return [
            m for m in messages if m.metadata.dst_node_id not in self.exhausted_nodes
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None, list[Message]]:
        """Aggregate valid updates; return them too, for per-client figures.

        Replies that say the budget is spent, carry an error, or hold anything
        but the expected weights and numbers are left out, with a logged reason.
        """
        accepted: list[Message] = []
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                log.warning(
                    "round %d: node %d failed: %s",
                    server_round,
                    node,
                    reply.error.reason,
                )
                continue
            reason = reply_problem(reply.content, self.expected_shapes)
            if reason:
                log.warning(
                    "round %d: rejected update from node %d: %s",
                    server_round,
                    node,
                    reason,
                )
                continue
            figures = {
                key: float(value)  # type: ignore[arg-type]
                for key, value in reply.content.metric_records[METRICS_KEY].items()
            }
            client_id = int(figures.get(CLIENT_ID_KEY, -1))
            self.client_figures[client_id] = figures
            if figures.get(EXHAUSTED_KEY, 0):
                self.exhausted_nodes.add(node)
                log.warning(
                    "round %d: client %d has spent its privacy budget; it "
                    "will not be selected again",
                    server_round,
                    client_id,
                )
                continue
            accepted.append(reply)
        if not accepted:
            return None, None, []
        arrays, aggregated = self.inner.aggregate_train(server_round, accepted)
        return arrays, aggregated, accepted


def reply_problem(
    content: RecordDict, expected_shapes: dict[str, tuple[int, ...]]
) -> str | None:
    """Why a train reply is unacceptable, or None if it is fine.

    A reply may hold one MetricRecord of numbers and, unless the client's
    budget is spent, one ArrayRecord with exactly the expected finite weights.
    Anything else (config records, strings, extra arrays) is refused.
    """
    if content.config_records:
        return f"unexpected config records {sorted(content.config_records)}"
    if set(content.metric_records) != {METRICS_KEY}:
        return f"metric records {sorted(content.metric_records)} != ['{METRICS_KEY}']"
    metrics = content.metric_records[METRICS_KEY]
    for key, value in metrics.items():
        if isinstance(value, list):
            return f"metric {key!r} is a list, not a number"
        if not math.isfinite(value):
            return f"metric {key!r} is not a finite number: {value!r}"
    if CLIENT_ID_KEY not in metrics:
        return f"metric {CLIENT_ID_KEY!r} is missing"
    if metrics.get(EXHAUSTED_KEY, 0):
        return None if not content.array_records else "spent client sent weights"
    examples = metrics.get(NUM_EXAMPLES_KEY)
    if not isinstance(examples, int | float) or examples < 1:
        return f"metric {NUM_EXAMPLES_KEY!r} must be a count >= 1, got {examples!r}"
    if set(content.array_records) != {ARRAYS_KEY}:
        return f"array records {sorted(content.array_records)} != ['{ARRAYS_KEY}']"
    arrays = content.array_records[ARRAYS_KEY]
    if set(arrays) != set(expected_shapes):
        extra = sorted(set(arrays) - set(expected_shapes))[:3]
        missing = sorted(set(expected_shapes) - set(arrays))[:3]
        return f"weights do not match the model (extra {extra}, missing {missing})"
    for name, array in arrays.items():
        if not np.issubdtype(np.dtype(array.dtype), np.floating):
            return f"weight {name!r} has dtype {array.dtype}, not a float type"
        if tuple(array.shape) != expected_shapes[name]:
            return (
                f"weight {name!r} has shape {tuple(array.shape)}, expected "
                f"{expected_shapes[name]}"
            )
        if not np.isfinite(array.numpy()).all():
            return f"weight {name!r} holds NaN or inf"
    return None
