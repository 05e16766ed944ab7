"""Settings of the head's local training, for the head benchmarks' arguments.

What `hyperparameter_rule.py`, `round_selection.py`, `head_then_encoder.py`
and `records_per_noise.py` name before they train anything, kept apart from
`head_fedavg.py` so that their `--help` and bad arguments answer without
importing torch: a `Candidate`, fedmodel's rule as one, the accountant a run
charges with and the folder (`CACHE`) their features and results go to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedmodel.config import compose_config
from fedmodel.config.budget_table import budget_row

# The repository's, whichever folder a benchmark is run from.
CACHE = Path(__file__).resolve().parents[1] / "outputs" / "bench-rule"


@dataclass(frozen=True)
class Candidate:
    """One setting of the head's local training."""

    learning_rate: float
    batch_size: int
    rounds: int
    epochs: int
    clip: float
    init: str  # random | label | warm (label, then the server's transfer split)
    momentum: float = 0.9
    # finetune.train_head_bias=false: local DP-SGD leaves the bias alone.
    hold_bias: bool = False

    def label(self) -> str:
        return (
            f"lr={self.learning_rate:g} B={self.batch_size} R={self.rounds} "
            f"E={self.epochs} C={self.clip:g} init={self.init}"
            + (" bias held" if self.hold_bias else "")
        )


def run_accountant() -> str:
    """The accountant a run charges with (the packaged default)."""
    return str(compose_config([])["privacy"]["accountant"])


def rule_candidate(epsilon: float) -> Candidate:
    """fedmodel's rule at `epsilon` (0: off), 10 rounds from the label names."""
    row = budget_row(
        finetune_mode="head",
        target_epsilon=epsilon or None,
        privacy_mode="dpsgd" if epsilon else "off",
    )
    assert row.learning_rate and row.batch_size and row.local_epochs
    return Candidate(
        row.learning_rate,
        row.batch_size,
        10,
        row.local_epochs,
        row.max_grad_norm,
        "label",
        hold_bias=row.train_head_bias is False,
    )
