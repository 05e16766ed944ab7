"""The server's checkpoint: atomic, checked on resume, metrics kept consistent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fedmodel.errors import FedmodelError
from fedmodel.run.checkpoint import (
    Checkpoint,
    keep_rounds_up_to,
    load_checkpoint,
    save_checkpoint,
)
from fedmodel.run.metrics import append_round, read_rounds

SHAPES = {"head.weight": (3, 4), "head.bias": (3,)}


def _checkpoint(round_number: int) -> Checkpoint:
    return Checkpoint(
        round=round_number,
        weights={name: torch.randn(shape) for name, shape in SHAPES.items()},
        exhausted_nodes=[11],
        client_figures={0: {"epsilon": 1.5, "steps": 30.0}},
    )


def test_a_checkpoint_round_trips(tmp_path: Path) -> None:
    saved = _checkpoint(4)
    save_checkpoint(tmp_path, saved)
    loaded = load_checkpoint(tmp_path, expected_shapes=SHAPES)
    assert (loaded.round, loaded.exhausted_nodes) == (4, [11])
    assert loaded.client_figures == {0: {"epsilon": 1.5, "steps": 30.0}}
    for name, weight in saved.weights.items():
        assert torch.equal(loaded.weights[name], weight)
    assert not list((tmp_path / "checkpoint").glob("*.tmp"))


def test_a_checkpoint_with_a_student_round_trips(tmp_path: Path) -> None:
    student = {"layer.weight": torch.randn(2, 2)}
    save_checkpoint(
        tmp_path,
        dataclasses.replace(_checkpoint(3), student_round=5, student_weights=student),
    )
    loaded = load_checkpoint(tmp_path, expected_shapes=SHAPES)
    assert (loaded.round, loaded.student_round, loaded.last_round) == (3, 5, 5)
    assert loaded.student_weights is not None
    assert torch.equal(loaded.student_weights["layer.weight"], student["layer.weight"])
    # A checkpoint without a student (the teacher's rounds, earlier versions).
    save_checkpoint(tmp_path, _checkpoint(3))
    loaded = load_checkpoint(tmp_path, expected_shapes=SHAPES)
    assert (loaded.student_round, loaded.student_weights, loaded.last_round) == (
        None,
        None,
        3,
    )


def test_a_student_round_without_its_weights_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, dataclasses.replace(_checkpoint(3), student_round=4))
    with pytest.raises(FedmodelError, match="student round without student weights"):
        load_checkpoint(tmp_path, expected_shapes=SHAPES)


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FedmodelError, match=r"resume=true but .*state.pt"):
        load_checkpoint(tmp_path, expected_shapes=SHAPES)


def test_a_checkpoint_for_another_model_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(1))
    with pytest.raises(FedmodelError, match="another model"):
        load_checkpoint(tmp_path, expected_shapes={"head.weight": (5, 4)})


def test_a_damaged_checkpoint_is_an_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(1))
    path = tmp_path / "checkpoint" / "state.pt"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(FedmodelError, match="cannot be read"):
        load_checkpoint(tmp_path, expected_shapes=SHAPES)


def test_rounds_recorded_after_the_checkpoint_are_dropped(tmp_path: Path) -> None:
    for number in (1, 2, 3):
        append_round(tmp_path, {"round": number, "accuracy": 0.1 * number})
    keep_rounds_up_to(tmp_path, 2)
    assert [r["round"] for r in read_rounds(tmp_path)] == [1, 2]
    keep_rounds_up_to(tmp_path, 2)
    assert [r["round"] for r in read_rounds(tmp_path)] == [1, 2]
