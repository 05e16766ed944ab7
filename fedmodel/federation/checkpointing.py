"""The round callbacks that write the server's checkpoint (`run/checkpoint.py`).

`SaveCheckpoint` runs after each of the teacher's rounds, `SaveStudentCheckpoint`
after each federated distillation round; both come right after the round
history, before evaluation and the metrics line (see `callbacks.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fedmodel.federation.callbacks import RoundHistory
from fedmodel.federation.round_state import Result, RoundState
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.run.checkpoint import Checkpoint, save_checkpoint
from fedmodel.training.model_selection import LastRoundOrStart


class SaveCheckpoint:
    """Write the server's state after the round's aggregate is loaded."""

    def __init__(
        self,
        run_dir: Path,
        *,
        strategy: BudgetAwareStrategy,
        weights: Callable[[], dict[str, torch.Tensor]],
        label_names: tuple[str, ...],
        history: RoundHistory,
        selector: LastRoundOrStart | None,
        resumed: Checkpoint | None,
        start_result: dict[str, float] | None,
    ) -> None:
        self.run_dir = run_dir
        self.strategy = strategy
        self.weights = weights
        self.label_names = label_names
        self.history = history
        # keep_best's selector, whose start the checkpoint carries.
        self.selector = selector
        # The run's start on the test split, for a resumed run's summary.
        self.start_result = start_result
        # The last checkpoint written or resumed from: the student's rounds
        # write it again with their own weights (`for_student`).
        self.saved = resumed

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Save weights, client figures, round history, the start.

        The start is keep_best's (round and weights) and the run's evaluation.
        A round that failed without a new model keeps the last round saved:
        "fix it and continue with resume=true" runs it again (`keep_figures`).
        """
        if state.failed_unreleased:
            self.keep_figures()
            return False, {}
        start = None if self.selector is None else self.selector.start
        self.write(
            Checkpoint(
                round=state.round,
                weights=self.weights(),
                client_figures=self.strategy.client_figures,
                # A copy: the history goes on to record a failed round.
                rounds=list(self.history.rounds),
                start_round=None if start is None else start.round,
                start_weights=None if start is None else start.weights,
                start_result=self.start_result,
                label_names=self.label_names,
                clipping_norm=self.strategy.clipping_norm(),
            )
        )
        return False, {}

    def keep_figures(self) -> None:
        """Save the clients' latest figures beside the last round saved.

        Clients charged in a failed round reported more than the checkpoint
        holds: a ledger that later holds less is refused (`ledger_regression`).
        Before any round was saved there is nothing to continue from: a
        resume starts at round 1.
        """
        if self.saved is not None:
            self.write(
                dataclasses.replace(
                    self.saved, client_figures=dict(self.strategy.client_figures)
                )
            )

    def write(self, checkpoint: Checkpoint) -> None:
        """Save `checkpoint` atomically and remember it."""
        save_checkpoint(self.run_dir, checkpoint)
        self.saved = checkpoint

    def for_student(
        self, student_weights: Callable[[], dict[str, torch.Tensor]]
    ) -> SaveStudentCheckpoint:
        """The callback for federated distillation rounds."""
        return SaveStudentCheckpoint(self, student_weights)


class SaveStudentCheckpoint:
    """After a federated distillation round: the teacher's checkpoint, plus the student.

    The teacher's part (its last round, weights and start) stays as its last
    round left it; the client figures, the round history and the student's
    round and weights are the latest. A resume then runs only the student's
    rounds not yet aggregated, so no client is charged for one twice.
    """

    def __init__(
        self,
        teacher: SaveCheckpoint,
        student_weights: Callable[[], dict[str, torch.Tensor]],
    ) -> None:
        self.teacher = teacher
        self.student_weights = student_weights

    def after_round(self, state: RoundState, metrics: dict[str, Any]) -> Result:
        """Save the student's weights after the round with the teacher's state."""
        base = self.teacher.saved
        if base is None:
            # No teacher round was checkpointed: there is no run to continue.
            return False, {}
        if state.failed_unreleased:
            self.teacher.keep_figures()
            return False, {}
        strategy = self.teacher.strategy
        self.teacher.write(
            dataclasses.replace(
                base,
                client_figures=strategy.client_figures,
                rounds=list(self.teacher.history.rounds),
                student_round=state.round,
                student_weights=self.student_weights(),
            )
        )
        return False, {}
