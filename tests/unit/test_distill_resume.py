"""Resuming a run killed during federated distillation: the student's rounds.

The real ServerApp and ClientApp over the in-process `FakeGrid` (no Ray): one
teacher round, then two federated distillation rounds, killed as the second
starts. A resume must run only that round, from the checkpoint's student, and
charge each ledger for it once. The server's texts are `distill.transfer_file`'s,
read once, before round 1, on a fresh run and on a resume alike.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from flwr.app import Message

from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.distill import distilled_student
from fedmodel.errors import FedmodelError
from fedmodel.federation.server_app import run_federation
from fedmodel.run.checkpoint import load_checkpoint
from fedmodel.run.metrics import read_rounds
from fedmodel.run.resumed_student import check_student_resume
from fedmodel.run.stored_config import stored_config
from tests.conftest import client_ledger, logging_restored
from tests.fake_grid import FAKE_GRID_RUN, FakeGrid, Killed, killed_at_round

DISTILL_RUN = [
    *FAKE_GRID_RUN,
    "warm_start.enabled=false",
    "privacy.target_epsilon=4",
    "distill=federated",
    "distill.rounds=2",
    "distill.epochs=1",
    "distill.augment_copies=0",
    "distill.student.num_layers=1",
]
# A few server-held texts keep the server's distillation short.
TRANSFER_TEXTS = "\n".join(f"card payment number {i} was declined" for i in range(16))


def _settings(run_dir: Path, *overrides: str) -> RunSettings:
    texts = run_dir.parent / "transfer.txt"
    stored = stored_config(run_dir)
    if stored is not None:  # a copied run: a resume keeps the file its run read
        texts = Path(stored["distill"]["transfer_file"])
    if not texts.is_file():
        texts.parent.mkdir(parents=True, exist_ok=True)
        texts.write_text(TRANSFER_TEXTS + "\n")
    raw = compose_config([*DISTILL_RUN, f"distill.transfer_file={texts}", *overrides])
    return settings_from_dict({**raw, "run_dir": str(run_dir)})


def _charged_rounds(run_dir: Path, client: int) -> list[int]:
    return [r["round"] for r in client_ledger(run_dir, client)["rounds"]]


def _checkpoint(run_dir: Path) -> Any:
    weights = torch.load(run_dir / "checkpoint" / "state.pt")["weights"]
    shapes = {name: tuple(w.shape) for name, w in weights.items()}
    return load_checkpoint(run_dir, expected_shapes=shapes)


def _kill_in_distillation(run_dir: Path, *overrides: str) -> Path:
    """Teacher round 1 and student round 2 done; killed as round 3 starts."""

    with logging_restored(), pytest.raises(Killed):
        run_federation(
            FakeGrid(2, before_train=killed_at_round(3)),
            _settings(run_dir, *overrides),
        )
    return run_dir


@pytest.fixture(scope="module")
def killed_in_distillation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DP run, killed during its federated distillation."""
    return _kill_in_distillation(tmp_path_factory.mktemp("base") / "run")


@pytest.fixture
def run_dir(killed_in_distillation: Path, tmp_path: Path) -> Path:
    """A private copy of the killed run."""
    return Path(shutil.copytree(killed_in_distillation, tmp_path / "run"))


def test_the_checkpoint_holds_the_student_after_its_round(
    killed_in_distillation: Path,
) -> None:
    checkpoint = _checkpoint(killed_in_distillation)
    # The teacher's part is as its last round left it.
    assert checkpoint.round == 1
    assert checkpoint.student_round == 2
    assert checkpoint.student_weights
    assert any(name.startswith("bert.encoder.") for name in checkpoint.student_weights)
    assert [(r["round"], r["model"]) for r in checkpoint.rounds] == [
        (1, "teacher"),
        (2, "student"),
    ]
    for client in (0, 1):
        assert _charged_rounds(killed_in_distillation, client) == [1, 2]


def _not_again(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the checkpoint's student was distilled on the server again")


def test_resume_runs_only_the_student_round_not_yet_aggregated(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = _checkpoint(run_dir).student_weights
    sent: list[dict[str, torch.Tensor]] = []

    def record_student(client: int, message: Message) -> None:
        sent.append(message.content.array_records["arrays"].to_torch_state_dict())

    # The checkpoint's student was distilled on the server's texts before its
    # client rounds: distilling a fresh one again was minutes of a real model's
    # time, its result then replaced by the checkpoint's.
    monkeypatch.setattr(distilled_student, "distill_on_server", _not_again)
    # The student rounds' own settings act on the rounds to come: they may change.
    rounds = ("distill.learning_rate=0.0002", "distill.temperature=3")
    summary = run_federation(
        FakeGrid(2, before_train=record_student),
        _settings(run_dir, "resume=true", *rounds),
    )
    assert summary["status"] == "ok"
    assert summary["distillation"]["server_texts"] == 16
    assert [(r["round"], r["model"]) for r in summary["rounds"]] == [
        (1, "teacher"),
        (2, "student"),
        (3, "student"),
    ]
    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2, 3]
    # Round 3 started from the checkpoint's student, not a fresh one.
    assert len(sent) == 2
    for name, value in saved.items():
        assert torch.equal(sent[0][name], value)
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2, 3]
    assert all(client["epsilon"] <= 4.0 + 1e-6 for client in summary["clients"])
    assert _checkpoint(run_dir).student_round == 3


def test_resume_with_other_num_rounds_after_distillation_began_is_refused(
    run_dir: Path,
) -> None:
    before = (run_dir / "checkpoint" / "state.pt").read_bytes()
    metrics = (run_dir / "metrics.jsonl").read_text()
    # Under DP the plan's rounds cannot change on resume at all.
    with pytest.raises(FedmodelError, match=r"num_rounds=2 \(the run's: 1\)"):
        run_federation(FakeGrid(2), _settings(run_dir, "resume=true", "num_rounds=2"))
    assert (run_dir / "checkpoint" / "state.pt").read_bytes() == before
    assert (run_dir / "metrics.jsonl").read_text() == metrics
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]


def test_without_dp_too_the_teachers_rounds_are_over_once_distillation_began(
    tmp_path: Path,
) -> None:
    run_dir = _kill_in_distillation(tmp_path / "run", "privacy=off")
    before = (run_dir / "checkpoint" / "state.pt").read_bytes()
    resumed = _settings(run_dir, "privacy=off", "resume=true", "num_rounds=2")
    with pytest.raises(FedmodelError, match=r"resume with num_rounds=1"):
        run_federation(FakeGrid(2), resumed)
    assert (run_dir / "checkpoint" / "state.pt").read_bytes() == before
    # Nor is the student's server distillation to come: under distill=server
    # the student made at the end would not be the checkpoint's.
    server = ("privacy=off", "resume=true", "distill=server", "distill.rounds=0")
    quoted = r"distill=server \(the run's: distill=federated\)"
    with pytest.raises(FedmodelError, match=quoted):
        run_federation(FakeGrid(2), _settings(run_dir, *server))
    assert (run_dir / "checkpoint" / "state.pt").read_bytes() == before


def test_resume_with_a_student_of_another_shape_is_refused(run_dir: Path) -> None:
    with pytest.raises(FedmodelError, match=r"distill.student"):
        run_federation(
            FakeGrid(2),
            _settings(run_dir, "resume=true", "distill.student.feed_forward_share=0.5"),
        )
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]


def test_resume_that_changes_how_the_student_was_made_is_refused(
    run_dir: Path, tmp_path: Path
) -> None:
    # The checkpoint's student was distilled on the server with the run's
    # values: this start's would not take effect, yet its config would say so.
    config = (run_dir / "resolved_config.yaml").read_text()
    other = tmp_path / "other.txt"
    other.write_text(TRANSFER_TEXTS + "\n" + TRANSFER_TEXTS + "\n")
    changed = ("distill.epochs=3", f"distill.transfer_file={other}")
    quoted = rf"distill.epochs=3 \(the run's: 1\), distill.transfer_file='{other}' "
    with pytest.raises(FedmodelError, match=quoted) as refused:
        run_federation(FakeGrid(2), _settings(run_dir, "resume=true", *changed))
    assert "resume with the run's values" in str(refused.value)
    assert (run_dir / "resolved_config.yaml").read_text() == config
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]


def test_the_students_transfer_file_moved_elsewhere_is_the_same_file(
    run_dir: Path, tmp_path: Path
) -> None:
    # Compared by path, the file the student was distilled on, moved with the
    # run folder or mounted elsewhere, was refused though nothing changed.
    moved = tmp_path / "moved" / "transfer.txt"
    moved.parent.mkdir()
    shutil.copyfile(_transfer_file(run_dir), moved)
    settings = _settings(run_dir, "resume=true", f"distill.transfer_file={moved}")
    check_student_resume(run_dir, _checkpoint(run_dir), settings)


def test_a_transfer_file_rewritten_at_the_runs_path_is_refused(
    run_dir: Path, tmp_path: Path
) -> None:
    # The same path no longer names the texts the student was distilled on.
    mine = tmp_path / "mine.txt"
    shutil.copyfile(_transfer_file(run_dir), mine)
    config = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    config["distill"]["transfer_file"] = str(mine)
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump(config))
    mine.write_text("a text the student never learned on\n")
    with pytest.raises(FedmodelError) as refused:
        check_student_resume(
            run_dir, _checkpoint(run_dir), _settings(run_dir, "resume=true")
        )
    said = str(refused.value)
    assert f"distill.transfer_file='{mine}' (the run's: '{mine}'), whose " in said
    assert "is not that of the file the student was distilled on (sha256 " in said
    assert "may name its file moved elsewhere, not another or a rewritten" in said


@pytest.mark.parametrize("damage", ["not utf-8", "a folder"])
def test_a_transfer_hash_that_cannot_be_read_is_named_not_skipped(
    run_dir: Path, tmp_path: Path, damage: str
) -> None:
    # Read as missing, the file was compared by path, so one rewritten at the
    # run's path was taken; a hash not UTF-8 stopped with a traceback.
    kept = run_dir / "transfer_file.sha256"
    kept.unlink()
    if damage == "a folder":
        kept.mkdir()
    else:
        kept.write_bytes(b"\xff\xfe")
    mine = tmp_path / "mine.txt"
    config = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    config["distill"]["transfer_file"] = str(mine)
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump(config))
    mine.write_text("a text the student never learned on\n")
    with pytest.raises(FedmodelError, match=f"{kept} cannot be read"):
        check_student_resume(
            run_dir, _checkpoint(run_dir), _settings(run_dir, "resume=true")
        )


def _transfer_file(run_dir: Path) -> Path:
    stored = stored_config(run_dir)
    assert stored is not None
    return Path(stored["distill"]["transfer_file"])


def test_before_distillation_began_its_settings_may_change(run_dir: Path) -> None:
    # No student in the checkpoint yet: the resumed run distils one with them.
    teacher_only = dataclasses.replace(_checkpoint(run_dir), student_round=None)
    settings = _settings(run_dir, "resume=true", "distill.epochs=3")
    check_student_resume(run_dir, teacher_only, settings)


def test_the_student_learns_on_the_transfer_texts_read_before_round_one(
    tmp_path: Path,
) -> None:
    # The file is read once, by the check before round 1: texts it holds
    # after that check are not what the server distils on.
    run_dir = tmp_path / "run"
    settings = _settings(run_dir, "distill=server", "distill.rounds=0")

    def rewrite_transfer_file(client: int, message: Message) -> None:
        (tmp_path / "transfer.txt").write_text("a text written after the check\n")

    summary = run_federation(FakeGrid(2, before_train=rewrite_transfer_file), settings)
    assert summary["distillation"]["server_texts"] == 16


def test_resume_that_changes_the_distillation_precision_is_refused(
    run_dir: Path,
) -> None:
    # The checkpoint's student was distilled on the server in float32.
    with pytest.raises(FedmodelError, match=r"distill.precision='bf16' \(the run's"):
        run_federation(
            FakeGrid(2), _settings(run_dir, "resume=true", "distill.precision=bf16")
        )
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]
