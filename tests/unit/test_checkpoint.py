"""The server's checkpoint: atomic, checked on resume, metrics kept consistent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from flwr.serverapp.strategy import FedAvg

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.federation.callbacks import RoundHistory
from fedmodel.federation.checkpointing import SaveCheckpoint
from fedmodel.federation.messages import ClientFailure
from fedmodel.federation.round_state import RoundState
from fedmodel.federation.server_model import resume
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.run.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedmodel.run.metrics import append_round, keep_rounds_up_to, read_rounds
from fedmodel.training.global_model import GlobalModel

SHAPES = {"head.weight": (3, 4), "head.bias": (3,)}
COUNTS = ("selected", "aggregated", "failed")


def _checkpoint(round_number: int) -> Checkpoint:
    return Checkpoint(
        round=round_number,
        weights={name: torch.randn(shape) for name, shape in SHAPES.items()},
        client_figures={0: {"epsilon": 1.5, "steps": 30.0}},
    )


def test_a_checkpoint_round_trips(tmp_path: Path) -> None:
    saved = _checkpoint(4)
    save_checkpoint(tmp_path, saved)
    loaded = load_checkpoint(tmp_path, expected_shapes=SHAPES)
    assert loaded.round == 4
    # No node ids: Flower draws them anew for each server process.
    raw = torch.load(tmp_path / "checkpoint" / "state.pt", weights_only=True)
    assert "exhausted_nodes" not in raw
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


def test_a_checkpoint_for_another_model_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(1))
    with pytest.raises(FedmodelError, match="another model"):
        load_checkpoint(tmp_path, expected_shapes={"head.weight": (5, 4)})


def test_a_damaged_checkpoint_is_an_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(1))
    path = tmp_path / "checkpoint" / "state.pt"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(FedmodelError, match="cannot be read") as refused:
        load_checkpoint(tmp_path, expected_shapes=SHAPES)
    # It says what to do, not only the reader's words.
    assert str(refused.value).endswith(
        "it is damaged: restore it from a copy, or start a new run in a "
        "folder of its own"
    )


def test_rounds_recorded_after_the_checkpoint_are_dropped(tmp_path: Path) -> None:
    for number in (1, 2, 3):
        append_round(tmp_path, {"round": number, "accuracy": 0.1 * number})
    keep_rounds_up_to(tmp_path, 2)
    assert [r["round"] for r in read_rounds(tmp_path)] == [1, 2]
    keep_rounds_up_to(tmp_path, 2)
    assert [r["round"] for r in read_rounds(tmp_path)] == [1, 2]


def test_a_resume_of_a_run_whose_test_file_chose_a_class_names_it(
    tmp_path: Path,
) -> None:
    # A run begun when a label only the test file held (z) was a class has a
    # head of 4 rows; its files now give 3 classes. Before, the resume was
    # refused as "weights for another model or fine-tuning mode", though
    # neither had changed.
    for name, labels in (("site0", "abc"), ("site1", "abc"), ("test", "abcz")):
        (tmp_path / f"{name}.csv").write_text(
            "text,label\n" + "".join(f"{name} note {y},{y}\n" for y in labels)
        )
    files = [
        "model=tiny",
        "task=files",
        f"task.train_files=[{tmp_path / 'site0.csv'},{tmp_path / 'site1.csv'}]",
        f"task.test_file={tmp_path / 'test.csv'}",
    ]
    settings = settings_from_dict(compose_config(files))
    task = load_task(settings.task, seed=0)
    begun = ("a", "b", "c", "z")
    old = GlobalModel(settings, label_names=begun, test=task.test)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_checkpoint(
        run_dir, Checkpoint(round=1, weights=old.weights(), label_names=begun)
    )
    model = GlobalModel(settings, label_names=task.label_names, test=task.test)
    with pytest.raises(FedmodelError) as refused:
        resume(run_dir, model)
    message = str(refused.value)
    assert "['a', 'b', 'c', 'z']" in message and "gone: ['z']" in message
    assert "only task.test_file holds is no class" in message
    assert message.endswith("start a new run in a folder of its own")


def test_a_resume_whose_labels_moved_is_refused_before_loading(tmp_path: Path) -> None:
    # Twelve whole-number labels: by value now, as text (1, 10, 11, 12, 2,
    # ...) for a run begun before. Loaded as it was, the head's row for "10"
    # would score label 2, silently.
    numbers = [str(n) for n in range(1, 13)]
    for name in ("site0", "site1", "test"):
        (tmp_path / f"{name}.csv").write_text(
            "text,label\n" + "".join(f"{name} note {n},{n}\n" for n in numbers)
        )
    files = [
        "model=tiny",
        "task=files",
        f"task.train_files=[{tmp_path / 'site0.csv'},{tmp_path / 'site1.csv'}]",
        f"task.test_file={tmp_path / 'test.csv'}",
    ]
    settings = settings_from_dict(compose_config(files))
    task = load_task(settings.task, seed=0)
    assert task.label_names == tuple(numbers)
    model = GlobalModel(settings, label_names=task.label_names, test=task.test)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    started = Checkpoint(round=1, weights=model.weights())  # names no labels
    save_checkpoint(run_dir, started)
    with pytest.raises(FedmodelError) as refused:
        resume(run_dir, model)
    assert "'1', '10', '11', '12', '2'" in str(refused.value)
    assert "start a new run" in str(refused.value)
    # A checkpoint that names its labels is held to them.
    moved = dataclasses.replace(started, label_names=tuple(sorted(numbers)))
    save_checkpoint(run_dir, moved)
    with pytest.raises(FedmodelError, match="the checkpoint's head scores"):
        resume(run_dir, model)
    save_checkpoint(run_dir, dataclasses.replace(started, label_names=task.label_names))
    assert resume(run_dir, model) is not None
    # Labels the user listed were never reordered: an older checkpoint loads.
    listed = settings_from_dict(compose_config([*files, f"task.labels={numbers}"]))
    model = GlobalModel(listed, label_names=task.label_names, test=task.test)
    save_checkpoint(run_dir, started)
    assert resume(run_dir, model) is not None


def test_a_checkpoint_keeps_its_label_order(tmp_path: Path) -> None:
    named = dataclasses.replace(_checkpoint(2), label_names=("b", "a"))
    save_checkpoint(tmp_path, named)
    assert load_checkpoint(tmp_path, expected_shapes=SHAPES).label_names == ("b", "a")
    save_checkpoint(tmp_path, _checkpoint(2))
    assert load_checkpoint(tmp_path, expected_shapes=SHAPES).label_names is None


def test_a_resume_of_a_folder_that_held_no_run_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A mistyped run folder is not a run that stopped before its first round.
    for name in ("site0", "site1", "test"):
        (tmp_path / f"{name}.csv").write_text(f"text,label\n{name} a,a\n{name} b,b\n")
    settings = settings_from_dict(
        compose_config(
            [
                "model=tiny",
                "task=files",
                f"task.train_files=[{tmp_path / 'site0.csv'},{tmp_path / 'site1.csv'}]",
                f"task.test_file={tmp_path / 'test.csv'}",
            ]
        )
    )
    task = load_task(settings.task, seed=0)
    model = GlobalModel(settings, label_names=task.label_names, test=task.test)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with caplog.at_level("WARNING", logger="fedmodel.federation.server_model"):
        assert resume(run_dir, model) is None
    assert f"{run_dir} holds no earlier run" in caplog.text
    assert "stopped before its first round" not in caplog.text
    caplog.clear()
    (run_dir / "resolved_config.yaml").write_text("task: {}\n")  # a start's
    with caplog.at_level("WARNING", logger="fedmodel.federation.server_model"):
        assert resume(run_dir, model) is None
    assert "stopped before its first round was aggregated" in caplog.text


def _round(number: int, model: str, *, failed: bool) -> RoundState:
    failures = [ClientFailure(number, 11, 0, "ValueError", True)] if failed else []
    return RoundState(number, model, [], 1, [], failures, None, released=not failed)


@pytest.mark.parametrize(
    ("rounds", "kept"),
    [
        ([(1, "teacher", False), (2, "teacher", True)], (1, None)),
        ([(1, "teacher", False), (2, "student", False), (3, "student", True)], (1, 2)),
    ],
)
def test_a_failed_round_leaves_the_last_round_saved_teacher_or_student(
    tmp_path: Path,
    rounds: list[tuple[int, str, bool]],
    kept: tuple[int, int | None],
) -> None:
    # A round that failed with no new model was saved as run: "fix it and
    # continue with resume=true" then skipped it. Its clients' figures stay.
    strategy = BudgetAwareStrategy(FedAvg(), expected_shapes=SHAPES)
    history = RoundHistory()
    teacher = SaveCheckpoint(
        tmp_path,
        strategy=strategy,
        weights=lambda: {name: torch.zeros(shape) for name, shape in SHAPES.items()},
        label_names=("a", "b", "c"),
        history=history,
        selector=None,
        resumed=None,
        start_result=None,
    )
    student = teacher.for_student(lambda: {"student.weight": torch.ones(2)})
    for number, model, failed in rounds:
        state = _round(number, model, failed=failed)
        strategy.client_figures[0] = {"epsilon": float(number)}
        history.after_round(state, {f"clients_{k}": 0 for k in COUNTS})
        (teacher if model == "teacher" else student).after_round(state, {})
    loaded = load_checkpoint(tmp_path, expected_shapes=SHAPES)
    assert (loaded.round, loaded.student_round) == kept
    assert [r["round"] for r in loaded.rounds] == list(range(1, len(rounds)))
    assert loaded.client_figures == {0: {"epsilon": float(len(rounds))}}
