"""The server's checkpoint after each round, and resuming a run from it.

`run_dir/checkpoint/state.pt` holds the last round run, the global weights
after it and the labels their head's rows stand for, each client's latest
privacy figures (whether its budget is spent among them), what each round
aggregated, the run's start on the test split (which a resumed run's summary
reports) and, with keep_best, the start's weights; under privacy=central the
adaptive clipping norm; once federated distillation has begun, also the
student's last round and its weights. No node id: Flower draws them anew for
each server process. The server writes it as soon as a round's aggregate is
loaded, before evaluating it or writing its metrics line, so a finished round
is never run again and no site is charged for it a second time. A round that
was in flight when the server stopped is run again; sites that trained in it
were charged for it, and are charged again (an over-count, never an
under-count). So is a round that failed with no new model: its clients'
figures are saved beside the round before it (`federation/checkpointing.py`).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedmodel.errors import FedmodelError
from fedmodel.run.layout import CHECKPOINT_DIR, CHECKPOINT_FILE, checkpoint_file
from fedmodel.run.metrics import clean_json

# What reading a missing, truncated or foreign state.pt raises.
_UNREADABLE = (
    OSError,
    RuntimeError,
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    pickle.UnpicklingError,
)


@dataclass(frozen=True)
class Checkpoint:
    """Everything the server needs to continue a run after `round`."""

    round: int
    weights: dict[str, torch.Tensor]
    client_figures: dict[int, dict[str, float]] = field(default_factory=dict)
    # One entry per round run: round, model, clients selected and aggregated.
    rounds: list[dict[str, Any]] = field(default_factory=list)
    # keep_best's start (round 0) and its weights, so that a resumed run still
    # falls back to it when the last round scores lower on the server's split.
    start_round: int | None = None
    start_weights: dict[str, torch.Tensor] | None = None
    # The run's start on the test split (accuracy, macro_f1) and whether it
    # was warm-started (warm_start, 1.0 or 0.0), before round 1:
    # a resumed run reports it as its initial accuracy. None in checkpoints
    # written before it was kept.
    start_result: dict[str, float] | None = None
    # Federated distillation: the student's last round run and the
    # student's trainable weights after it (`round` stays the teacher's last).
    student_round: int | None = None
    student_weights: dict[str, torch.Tensor] | None = None
    # The labels of the head's rows, in order. None in checkpoints written
    # before it was kept.
    label_names: tuple[str, ...] | None = None
    # privacy=central: the adaptive clipping norm the next round clips to.
    # None elsewhere, and in checkpoints written before it was kept.
    clipping_norm: float | None = None

    @property
    def last_round(self) -> int:
        """The last round run, the teacher's or the student's."""
        return max(self.round, self.student_round or 0)


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint atomically: a crash leaves the previous one intact."""
    directory = run_dir / CHECKPOINT_DIR
    directory.mkdir(exist_ok=True)
    temp = directory / f"{CHECKPOINT_FILE}.tmp"
    torch.save(
        {
            "round": checkpoint.round,
            "weights": checkpoint.weights,
            "client_figures": {
                int(cid): dict(figures)
                for cid, figures in checkpoint.client_figures.items()
            },
            # JSON text: weights_only loading accepts strings, not free dicts.
            "rounds": json.dumps(clean_json(checkpoint.rounds)),
            "start_round": -1
            if checkpoint.start_round is None
            else checkpoint.start_round,
            "start_weights": checkpoint.start_weights or {},
            "start_result": dict(checkpoint.start_result or {}),
            "student_round": -1
            if checkpoint.student_round is None
            else checkpoint.student_round,
            "student_weights": checkpoint.student_weights or {},
            "label_names": json.dumps(
                None if checkpoint.label_names is None else list(checkpoint.label_names)
            ),
            "clipping_norm": -1.0
            if checkpoint.clipping_norm is None
            else checkpoint.clipping_norm,
        },
        temp,
    )
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    temp.replace(directory / CHECKPOINT_FILE)


def load_checkpoint(
    run_dir: Path, *, expected_shapes: dict[str, tuple[int, ...]]
) -> Checkpoint:
    """Read the run's checkpoint; weights must fit the model being built.

    The caller has found the file: a resume without one starts at round 1
    (`federation/server_model.resume`).
    """
    path = checkpoint_file(run_dir)
    try:
        checkpoint = _from_saved(torch.load(path, weights_only=True))
    except _UNREADABLE as exc:
        raise FedmodelError(
            f"checkpoint {path} cannot be read ({exc}); it is damaged: restore it "
            "from a copy, or start a new run in a folder of its own"
        ) from exc
    shapes = {name: tuple(w.shape) for name, w in checkpoint.weights.items()}
    start = checkpoint.start_weights
    if start is not None and {n: tuple(w.shape) for n, w in start.items()} != shapes:
        raise FedmodelError(
            f"checkpoint {path} holds a start model of another shape than "
            "its weights: it is damaged; start a new run"
        )
    if (checkpoint.student_round is None) != (checkpoint.student_weights is None):
        raise FedmodelError(
            f"checkpoint {path} holds a student round without student weights "
            "(or the reverse): it is damaged; start a new run"
        )
    if shapes != expected_shapes:
        raise FedmodelError(
            f"checkpoint {path} holds weights for another model or fine-tuning "
            "mode: resume with the same model and finetune settings as the run"
        )
    return checkpoint


def _from_saved(raw: dict[str, Any]) -> Checkpoint:
    """The checkpoint `save_checkpoint` wrote, or one of an earlier version."""
    # Checkpoints of earlier versions hold the best model so far under
    # best_*: a resumed run falls back to that one instead of the start.
    start_round = int(raw.get("start_round", raw.get("best_round", -1)))
    # Checkpoints of earlier versions also hold `exhausted_nodes`, the node
    # ids of the clients whose budget was spent. In a new server process
    # those ids name no node (or another), so they are not read: the client
    # figures say which clients are spent.
    start_weights = raw.get("start_weights", raw.get("best_weights"))
    start_result = raw.get("start_result")
    student_round = int(raw.get("student_round", -1))
    student_weights = raw.get("student_weights")
    label_names = json.loads(raw.get("label_names", "null"))
    clipping_norm = float(raw.get("clipping_norm", -1.0))
    return Checkpoint(
        round=int(raw["round"]),
        weights=dict(raw["weights"]),
        client_figures=_client_figures(raw),
        rounds=list(json.loads(raw.get("rounds", "[]"))),
        start_round=None if start_round < 0 else start_round,
        start_weights=dict(start_weights) if start_weights else None,
        start_result={str(k): float(v) for k, v in start_result.items()}
        if start_result
        else None,
        student_round=None if student_round < 0 else student_round,
        student_weights=dict(student_weights) if student_weights else None,
        label_names=None
        if label_names is None
        else tuple(str(name) for name in label_names),
        clipping_norm=None if clipping_norm < 0 else clipping_norm,
    )


def _client_figures(raw: dict[str, Any]) -> dict[int, dict[str, float]]:
    return {
        int(cid): {str(k): float(v) for k, v in figures.items()}
        for cid, figures in raw.get("client_figures", {}).items()
    }


def recorded_client_figures(run_dir: Path) -> dict[int, dict[str, float]]:
    """Each client's privacy figures the run's checkpoint holds, by client id.

    Empty where there is no checkpoint or it cannot be read: then there is
    nothing to compare with, and `load_checkpoint` names the problem when the
    run loads it. The weights are mapped, not read, so this stays quick.
    """
    raw = _mapped(run_dir)
    return {} if raw is None else _client_figures(raw)


def recorded_label_names(run_dir: Path) -> tuple[str, ...] | None:
    """The labels of the head's rows as the run's checkpoint holds them.

    None where there is no checkpoint, it cannot be read or it names no labels
    (written by an earlier version), as for `recorded_client_figures`.
    """
    raw = _mapped(run_dir)
    names = None if raw is None else json.loads(raw.get("label_names", "null"))
    return None if names is None else tuple(str(name) for name in names)


def _mapped(run_dir: Path) -> dict[str, Any] | None:
    """The run's checkpoint with its weights mapped, not read; None if unreadable."""
    path = checkpoint_file(run_dir)
    if not path.is_file():
        return None
    try:
        return dict(torch.load(path, weights_only=True, mmap=True))
    except _UNREADABLE:
        return None


def remove_stale_checkpoint(run_dir: Path) -> bool:
    """Delete a `state.pt.tmp` a kill left behind; True if there was one."""
    temp = run_dir / CHECKPOINT_DIR / f"{CHECKPOINT_FILE}.tmp"
    if not temp.is_file():
        return False
    temp.unlink()
    return True
