"""A range for every number in the settings: finite, and inside its stated bounds.

`NUMBER_RULES` names each numeric key of `fedmodel.config.schema` (a test keeps
the two in step), so `nan`, `inf`, a negative rate or a zero batch stop when
the config is checked, naming the key, the value and the range it must be in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fedmodel.config.schema import RunSettings
from fedmodel.errors import FedmodelError

# Said after "got inf": a number typed past a float's range is read as inf.
OVERFLOW_NOTE = " (a number past a float's range, as 1e400, reads as inf)"


@dataclass(frozen=True)
class Bound:
    """An interval of allowed values; a missing end is unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        """Whether `value` is finite and inside the interval."""
        if not math.isfinite(value):
            return False
        if self.low is not None:
            if value < self.low or (self.low_open and value == self.low):
                return False
        if self.high is not None:
            if value > self.high or (self.high_open and value == self.high):
                return False
        return True

    def describe(self) -> str:
        """The interval as a reader writes it, e.g. `in (0, 1]` or `>= 1`."""
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "of any size"


POSITIVE = Bound(low=0, low_open=True)
NON_NEGATIVE = Bound(low=0)
AT_LEAST_ONE = Bound(low=1)
FRACTION = Bound(low=0, high=1, high_open=True)
OPEN_FRACTION = Bound(low=0, high=1, low_open=True, high_open=True)
MOMENTUM = Bound(low=0, high=1, high_open=True)

# Every numeric key of RunSettings, dotted as in an override. A list key
# (distill.student.layers) applies its bound to each item.
NUMBER_RULES: dict[str, Bound] = {
    "num_clients": AT_LEAST_ONE,
    "num_rounds": AT_LEAST_ONE,
    "seed": NON_NEGATIVE,
    "task.max_length": Bound(low=2),  # room for [CLS] and [SEP]
    "task.val_fraction": FRACTION,
    "task.max_train_examples": AT_LEAST_ONE,
    "task.max_test_examples": AT_LEAST_ONE,
    "task.max_per_chapter": AT_LEAST_ONE,
    "task.min_per_chapter": NON_NEGATIVE,
    "task.test_fraction": OPEN_FRACTION,
    "task.transfer_fraction": FRACTION,
    "task.split_seed": NON_NEGATIVE,
    "model.dropout": FRACTION,
    "model.hidden_size": AT_LEAST_ONE,
    "model.num_layers": AT_LEAST_ONE,
    "model.num_heads": AT_LEAST_ONE,
    "model.intermediate_size": AT_LEAST_ONE,
    "finetune.learning_rate": POSITIVE,
    "finetune.batch_size": AT_LEAST_ONE,
    "finetune.local_epochs": AT_LEAST_ONE,
    "finetune.momentum": MOMENTUM,
    "finetune.weight_decay": NON_NEGATIVE,
    "finetune.lora_rank": AT_LEAST_ONE,
    "finetune.lora_alpha": POSITIVE,
    "partition.alpha": POSITIVE,
    "partition.min_partition_size": NON_NEGATIVE,
    "privacy.target_epsilon": POSITIVE,
    "privacy.target_delta": OPEN_FRACTION,
    "privacy.max_grad_norm": POSITIVE,
    "privacy.initial_clipping_norm": POSITIVE,
    "privacy.target_clipped_quantile": OPEN_FRACTION,
    "privacy.clip_norm_lr": POSITIVE,
    "privacy.clipped_count_stddev": NON_NEGATIVE,
    "strategy.fraction_train": Bound(low=0, high=1, low_open=True),
    "strategy.min_train_clients": AT_LEAST_ONE,
    "strategy.proximal_mu": NON_NEGATIVE,
    "strategy.eta": POSITIVE,
    "strategy.eta_l": POSITIVE,
    "strategy.beta_1": MOMENTUM,
    "strategy.beta_2": MOMENTUM,
    "strategy.tau": POSITIVE,
    "strategy.trim_beta": Bound(low=0, high=0.5, high_open=True),
    "distill.student.num_layers": AT_LEAST_ONE,
    "distill.student.layers": NON_NEGATIVE,
    "distill.student.feed_forward_share": Bound(low=0, high=1, low_open=True),
    "distill.student.max_length": Bound(low=2),  # as task.max_length
    "distill.temperature": POSITIVE,
    "distill.kl_weight": NON_NEGATIVE,
    "distill.hidden_weight": NON_NEGATIVE,
    "distill.epochs": AT_LEAST_ONE,
    "distill.learning_rate": POSITIVE,
    "distill.batch_size": AT_LEAST_ONE,
    "distill.augment_copies": NON_NEGATIVE,
    "distill.rounds": NON_NEGATIVE,
    "federation.cpus_per_client": POSITIVE,
    "federation.round_timeout": POSITIVE,
    "federation.min_replies": AT_LEAST_ONE,
    "federation.gpus_per_client": NON_NEGATIVE,
    "warm_start.epochs": AT_LEAST_ONE,
    "warm_start.learning_rate": POSITIVE,
    "warm_start.batch_size": AT_LEAST_ONE,
    "latency.calls_batch1": AT_LEAST_ONE,
    "latency.calls_batch32": AT_LEAST_ONE,
    "audit.canaries": NON_NEGATIVE,
    "audit.client": NON_NEGATIVE,
    "audit.reference_canaries": NON_NEGATIVE,
}


def check_numbers(settings: RunSettings) -> None:
    """Refuse any number that is not finite or lies outside its key's bound.

    Null (None) passes: the schema allows it only where null has a meaning of
    its own (e.g. "no cap", "derive it").
    """
    for key, value in numeric_values(settings):
        bound = NUMBER_RULES[key]
        if not bound.holds(float(value)):
            read_as = OVERFLOW_NOTE if math.isinf(value) else ""
            raise FedmodelError(
                f"config key '{key}' must be a finite number {bound.describe()}, "
                f"got {value!r}{read_as}; set {key}= a value in that range"
            )


def numeric_values(node: Any, *, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted key, value) for every int or float in nested settings."""
    for spec in dataclasses.fields(node):
        value = getattr(node, spec.name)
        key = f"{path}.{spec.name}" if path else spec.name
        if dataclasses.is_dataclass(value):
            yield from numeric_values(value, path=key)
        elif isinstance(value, list):
            yield from ((key, item) for item in value if _is_number(item))
        elif _is_number(value):
            yield key, value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
