"""The round loop without Ray: the real ServerApp and ClientApp over a fake Grid.

A module fixture runs 2 tiny clients for round 1 of 2 and is "killed" as round
2 starts (after round 1's checkpoint). Each test copies that run folder and
continues it: resume, budget stop, failed clients, ledgers that lost charges,
an operator's reset, a kill before the first checkpoint, left-over temp files.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.federation import server_app
from fedmodel.federation.messages import CONFIG_KEY, VERSION_KEY
from fedmodel.federation.rounds import RoundPlan, check_selected_count
from fedmodel.federation.server_app import run_federation
from fedmodel.model.location import encoder_identity
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.ledger_reset import archive_ledger
from fedmodel.run.checkpoint import load_checkpoint
from fedmodel.run.layout import ENCODER_IDENTITY, TASK_FILE_HASHES
from fedmodel.run.metrics import read_rounds
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.model_selection import LastRoundOrStart
from tests.conftest import (
    FEW_LATENCY_CALLS,
    client_ledger,
    client_ledger_path,
    logging_restored,
)
from tests.fake_grid import FIRST_NODE, FakeGrid, Killed, killed_at_round

TINY_RUN = [
    "model=tiny",
    "task.max_train_examples=100",
    "task.max_test_examples=50",
    "num_clients=2",
    "num_rounds=2",
    "partition=iid",
    "finetune.batch_size=32",
    "finetune.local_epochs=1",
    "warm_start.enabled=false",
    "distill=off",
    *FEW_LATENCY_CALLS,
]


def _settings(run_dir: Path, *overrides: str) -> RunSettings:
    raw = compose_config([*TINY_RUN, *overrides])
    return settings_from_dict({**raw, "run_dir": str(run_dir)})


def _charged_rounds(run_dir: Path, client: int) -> list[int]:
    return [r["round"] for r in client_ledger(run_dir, client)["rounds"]]


def _summary(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text()))


@pytest.fixture(scope="module")
def after_round_one(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run killed as its round 2 started: round 1 charged and checkpointed."""
    run_dir = tmp_path_factory.mktemp("base") / "run"

    with logging_restored(), pytest.raises(Killed):
        run_federation(FakeGrid(2, before_train=killed_at_round(2)), _settings(run_dir))
    return run_dir


@pytest.fixture
def run_dir(after_round_one: Path, tmp_path: Path) -> Path:
    """A private copy of the killed run."""
    return Path(shutil.copytree(after_round_one, tmp_path / "run"))


def _shapes(run_dir: Path) -> dict[str, tuple[int, ...]]:
    weights = torch.load(run_dir / "checkpoint" / "state.pt")["weights"]
    return {name: tuple(w.shape) for name, w in weights.items()}


def test_the_killed_run_kept_round_one(after_round_one: Path) -> None:
    assert [r["round"] for r in read_rounds(after_round_one)] == [1]
    checkpoint = load_checkpoint(
        after_round_one, expected_shapes=_shapes(after_round_one)
    )
    assert checkpoint.round == 1
    assert checkpoint.rounds[0]["clients_aggregated"] == 2
    assert _charged_rounds(after_round_one, 0) == [1]
    # What a resume compares the encoder it loads with (run/resumed_encoder.py).
    encoder = encoder_identity(_settings(after_round_one))
    assert (after_round_one / ENCODER_IDENTITY).read_text() == encoder + "\n"
    # What it compares a moved data file with; the bank task names none.
    assert json.loads((after_round_one / TASK_FILE_HASHES).read_text()) == {}


def test_resume_runs_only_the_rounds_not_yet_aggregated(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    grid = FakeGrid(2)
    with caplog.at_level(logging.INFO, logger="fedmodel.federation.rounds"):
        summary = run_federation(grid, _settings(run_dir, "resume=true"))
    # The first round this process runs says why it is the slow one; once.
    slow = [m for m in caplog.messages if "in its first round of a run" in m]
    assert len(slow) == 1 and slow[0].startswith("round 2: 2 clients training;")
    # The resumed round asked both clients' ledgers before training them.
    sent = [m.metadata.message_type for m in grid.sent]
    assert sent == ["query", "query", "train", "train"]
    assert summary["status"] == "ok"
    assert summary["rounds_completed"] == 2
    assert summary["warm_start"] is False  # the killed run's start, kept
    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2]
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]
    assert [r["clients_aggregated"] for r in summary["rounds"]] == [2, 2]


def test_a_resumed_start_stopped_midway_leaves_no_finished_summary(
    tmp_path: Path,
) -> None:
    # A finished run, resumed for more rounds and killed after one of them:
    # summary.json must not go on saying "ok" with the earlier round count
    # beside a checkpoint (and weights) that carry more rounds and charges.
    run_dir = tmp_path / "run"
    run_federation(FakeGrid(2), _settings(run_dir, "num_rounds=1", "privacy=off"))
    assert _summary(run_dir)["status"] == "ok"
    more = _settings(run_dir, "num_rounds=3", "privacy=off", "resume=true")
    with logging_restored(), pytest.raises(Killed):
        run_federation(FakeGrid(2, before_train=killed_at_round(3)), more)
    assert load_checkpoint(run_dir, expected_shapes=_shapes(run_dir)).round == 2
    earlier = _summary(run_dir)
    assert earlier["status"] == "resumed"
    assert earlier["rounds_completed"] == 1  # the earlier start's figures, kept
    finished = run_federation(FakeGrid(2), more)
    assert finished["status"] == "ok" and _summary(run_dir)["rounds_completed"] == 3


def test_a_resumed_start_marks_the_summary_before_it_writes_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed once it wrote its resolved config: an "ok" summary of 1 round
    # must not stand beside the settings of a 3-round start, which `fedmodel
    # audit` (and a resume, for a card a stop left out) read as the summary's.
    run_dir = tmp_path / "run"
    run_federation(FakeGrid(2), _settings(run_dir, "num_rounds=1", "privacy=off"))
    written = server_app.write_resolved_config

    def then_killed(*args: Any, **kwargs: Any) -> None:
        written(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(server_app, "write_resolved_config", then_killed)
    more = _settings(run_dir, "num_rounds=3", "privacy=off", "resume=true")
    with logging_restored(), pytest.raises(Killed):
        run_federation(FakeGrid(2), more)
    assert _summary(run_dir)["status"] == "resumed"


def test_a_checkpoint_that_kept_node_ids_resumes_without_them(run_dir: Path) -> None:
    # Checkpoints of earlier versions kept the node ids of spent clients. In
    # a new server process such an id names no node, or another: here node
    # FIRST_NODE + 1, client 1's now, whose budget has room for round 2.
    path = run_dir / "checkpoint" / "state.pt"
    saved = torch.load(path, weights_only=True)
    torch.save({**saved, "exhausted_nodes": [FIRST_NODE + 1]}, path)
    summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert summary["status"] == "ok"
    assert summary["rounds_completed"] == 2
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]


def test_client_compute_is_summed_only_where_every_update_reports_it(
    tmp_path: Path,
) -> None:
    # A DP client withholds its compute time (privacy.md): unknown, not 0.
    private = run_federation(FakeGrid(2), _settings(tmp_path / "dp", "num_rounds=1"))
    assert private["client_compute_seconds"] is None
    assert read_rounds(tmp_path / "dp")[0]["client_compute_seconds"] is None
    plain = _settings(tmp_path / "off", "num_rounds=1", "privacy=off")
    assert run_federation(FakeGrid(2), plain)["client_compute_seconds"] > 0


def test_a_round_that_aggregated_nothing_has_no_compute_figure(
    tmp_path: Path,
) -> None:
    # Round 2's updates are all rejected: its compute is unknown (None, not
    # 0), and the run's total is round 1's.
    grid = FakeGrid(2)
    deliver = grid.send_and_receive

    def poison_round_two(
        messages: Any, *, timeout: float | None = None
    ) -> list[Message]:
        messages = list(messages)
        replies = list(deliver(messages, timeout=timeout))
        if messages[0].content["config"]["server-round"] != 2:
            return replies
        for reply in replies:
            weights = reply.content["arrays"].to_torch_state_dict()
            reply.content["arrays"] = ArrayRecord(
                {k: torch.full_like(w, float("nan")) for k, w in weights.items()}
            )
        return replies

    grid.send_and_receive = poison_round_two  # type: ignore[method-assign]
    run_dir = tmp_path / "run"
    with pytest.raises(FedmodelError, match="no client returned an update"):
        run_federation(grid, _settings(run_dir, "privacy=off"))
    first, second = read_rounds(run_dir)
    # Without record-level DP no client is asked what its ledger holds.
    assert [m.metadata.message_type for m in grid.sent] == ["train"] * 4
    assert second["clients_aggregated"] == 0
    assert second["client_compute_seconds"] is None
    assert first["client_compute_seconds"] > 0
    assert _summary(run_dir)["client_compute_seconds"] == pytest.approx(
        first["client_compute_seconds"]
    )


def test_resume_still_compares_against_the_start(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checkpoint carries the start (round 0); a resume offers it, then
    # round 1 (the checkpoint's model), then round 2, and keeps round 2 or
    # the start.
    saved = load_checkpoint(run_dir, expected_shapes=_shapes(run_dir))
    assert saved.start_round == 0 and saved.start_weights is not None
    offered: list[int] = []
    original = LastRoundOrStart.offer

    def recording(self: LastRoundOrStart, round_number: int, weights: Any) -> bool:
        offered.append(round_number)
        return original(self, round_number, weights)

    monkeypatch.setattr(LastRoundOrStart, "offer", recording)
    summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert offered == [0, 1, 2]
    assert summary["selected_round"] in (0, 2)


def _start_accuracy(run_dir: Path) -> float:
    """The killed run's start, evaluated afresh from the checkpoint's start weights."""
    settings = _settings(run_dir)
    task = load_task(settings.task, seed=settings.seed)
    model = GlobalModel(settings, label_names=task.label_names, test=task.test)
    start = load_checkpoint(run_dir, expected_shapes=_shapes(run_dir)).start_weights
    assert start is not None
    model.load(start)
    return model.evaluate().accuracy


def test_a_resumed_summary_reports_the_runs_start(run_dir: Path) -> None:
    # The killed run's checkpoint kept the start's evaluation...
    kept = load_checkpoint(run_dir, expected_shapes=_shapes(run_dir)).start_result
    assert kept is not None
    assert kept["accuracy"] == pytest.approx(_start_accuracy(run_dir))
    # ...and a resume reports what it kept. A marker no evaluation of 50 test
    # records can give (round 1 may leave a tiny model's accuracy where it
    # was, so comparing with round 1's accuracy could not tell).
    path = run_dir / "checkpoint" / "state.pt"
    raw = torch.load(path)
    raw["start_result"] = {"accuracy": 0.123, "macro_f1": 0.045}
    torch.save(raw, path)
    summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert summary["initial_accuracy"] == pytest.approx(0.123)
    assert summary["warm_start"] is None  # this start does not say
    # The resumed run's checkpoints keep the start for the next resume.
    saved = load_checkpoint(run_dir, expected_shapes=_shapes(run_dir))
    assert saved.start_result is not None
    assert saved.start_result["accuracy"] == pytest.approx(0.123)


def test_a_checkpoint_without_the_start_says_initial_accuracy_is_not_it(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A checkpoint written before the start's evaluation was kept.
    path = run_dir / "checkpoint" / "state.pt"
    raw = torch.load(path)
    raw.pop("start_result")
    torch.save(raw, path)
    caplog.set_level(logging.WARNING, logger="fedmodel")
    summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert summary["status"] == "ok"
    assert "initial_accuracy is the test accuracy after round 1" in caplog.text


def test_a_resume_that_changes_the_privacy_plan_is_refused_at_the_server(
    run_dir: Path,
) -> None:
    # Noise was calibrated for 2 rounds and the ledgers keep it: 3 rounds
    # would train under a plan `fedmodel privacy-plan` never showed.
    ledger = client_ledger_path(run_dir, 0).read_bytes()
    with pytest.raises(FedmodelError, match=r"num_rounds=3 \(the run's: 2\)"):
        run_federation(FakeGrid(2), _settings(run_dir, "resume=true", "num_rounds=3"))
    assert client_ledger_path(run_dir, 0).read_bytes() == ledger
    assert [r["round"] for r in read_rounds(run_dir)] == [1]


def test_a_resume_refused_for_its_checkpoint_leaves_the_folders_config(
    run_dir: Path,
) -> None:
    config = (run_dir / "resolved_config.yaml").read_text()
    (run_dir / "checkpoint" / "state.pt").write_bytes(b"cut short")
    changed = _settings(run_dir, "resume=true", "finetune.learning_rate=0.5")
    with pytest.raises(FedmodelError, match="state.pt"):
        run_federation(FakeGrid(2), changed)
    assert (run_dir / "resolved_config.yaml").read_text() == config
    assert not (run_dir / "resolved_config.1.yaml").exists()


def test_no_client_returning_an_update_names_every_client_and_reason(
    run_dir: Path,
) -> None:
    for client in (0, 1):
        path = client_ledger_path(run_dir, client)
        path.write_text(path.read_text()[:40])
    with pytest.raises(FedmodelError) as failure:
        run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    message = str(failure.value)
    assert "round 2: no client returned an update; 2 failed" in message
    assert "client 0: " in message and "client 1: " in message
    assert "client-1/privacy_ledger.json" in message
    assert "Traceback" not in message
    summary = _summary(run_dir)
    assert summary["status"] == "failed"
    assert summary["rounds_completed"] == 1
    assert {f["client_id"] for f in summary["failed_clients"]} == {0, 1}
    # The failed round aggregated nothing: the checkpoint stays at round 1.
    assert load_checkpoint(run_dir, expected_shapes=_shapes(run_dir)).round == 1


def test_a_round_that_failed_is_run_again_when_the_run_is_continued(
    run_dir: Path,
) -> None:
    # Round 2, the last, failed at every client: "Fix it and continue with
    # resume=true", with the same num_rounds, trained nothing before (the
    # failed round was checkpointed as run) and ended "ok" after 1 round.
    paths = [client_ledger_path(run_dir, client) for client in (0, 1)]
    kept = [path.read_text() for path in paths]
    for path in paths:
        path.write_text(path.read_text()[:40])
    with pytest.raises(FedmodelError, match="no client returned an update"):
        run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2]
    for path, text in zip(paths, kept, strict=True):
        path.write_text(text)

    summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert summary["status"] == "ok"
    assert summary["rounds_completed"] == 2
    assert [r["clients_aggregated"] for r in summary["rounds"]] == [2, 2]
    # The failed attempt's line is replaced, not repeated.
    lines = read_rounds(run_dir)
    assert [(r["round"], r["clients_aggregated"]) for r in lines] == [(1, 2), (2, 2)]
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]


def test_a_round_short_of_min_replies_is_not_kept_and_runs_again(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Round 2 aggregated client 0's update alone, client 1's ledger broken,
    # with federation.min_replies=2: it stopped the run, but was checkpointed
    # as round 2, and a resume went on after it. Run again, it left client 0
    # spent: a round short for that is not kept either.
    at_least_two = ("resume=true", "federation.min_replies=2")
    round_one = torch.load(run_dir / "checkpoint" / "state.pt")["weights"]
    path = client_ledger_path(run_dir, 1)
    kept = path.read_text()
    path.write_text(kept[:40])
    with pytest.raises(FedmodelError) as failure:
        run_federation(FakeGrid(2), _settings(run_dir, *at_least_two))
    message = str(failure.value)
    assert "round 2: 1 accepted update, fewer than federation.min_replies=2" in (
        message
    )
    assert "The model does not hold round 2: continue with resume=true to run" in (
        message
    )
    assert _summary(run_dir)["rounds_completed"] == 1
    checkpoint = load_checkpoint(run_dir, expected_shapes=_shapes(run_dir))
    assert checkpoint.round == 1
    assert [r["round"] for r in checkpoint.rounds] == [1]
    for name, weight in round_one.items():
        assert torch.equal(checkpoint.weights[name], weight)
    # Client 0 stays charged for the attempt: its figure is saved, so a
    # ledger that later holds less is refused.
    assert _charged_rounds(run_dir, 0) == [1, 2]
    charged = client_ledger(run_dir, 0)["rounds"][-1]["epsilon"]
    assert checkpoint.client_figures[0]["epsilon"] == pytest.approx(charged)
    path.write_text(kept)

    # Run again, client 0's budget (planned for 2 rounds) is spent: it
    # answered "budget exhausted", and round 2 was kept with client 1's
    # update alone, the run "ok" below min_replies.
    capsys.readouterr()
    summary = run_federation(FakeGrid(2), _settings(run_dir, *at_least_two))
    # Its console line read "1/2 clients", as a failed round's does, and its
    # metrics line said neither the spent budget nor the unchanged model.
    assert (
        "| 1 of 2 clients' updates accepted, 1 client's budget spent; below "
        "federation.min_replies=2, the model is unchanged |"
    ) in capsys.readouterr().err
    last = read_rounds(run_dir)[-1]
    assert (last["round"], last["clients_aggregated"], last["clients_selected"]) == (
        2,
        1,
        2,
    )
    assert (last["clients_budget_exhausted"], last["model_changed"]) == (1, False)
    assert read_rounds(run_dir)[0]["model_changed"] is True
    assert (_charged_rounds(run_dir, 0), _charged_rounds(run_dir, 1)) == (
        [1, 2],
        [1, 2],
    )
    checkpoint = load_checkpoint(run_dir, expected_shapes=_shapes(run_dir))
    for name, weight in round_one.items():
        assert torch.equal(checkpoint.weights[name], weight)
    # summary.json's round entries said model_changed, not the spent budget.
    assert [
        (r["round"], r["clients_budget_exhausted"], r["model_changed"])
        for r in summary["rounds"]
    ] == [(1, 0, True), (2, 1, False)]
    # No resume can add client 0's update: the run ends as a spent one does.
    assert (summary["status"], summary["rounds_completed"]) == ("ok", 1)
    assert [c["budget_exhausted"] for c in summary["clients"]] == [True, False]
    assert (
        "teacher round 2: 1 accepted update, and client 0 has spent its privacy "
        "budget: 1 of 2 clients has budget left, fewer than "
        "federation.min_replies=2, so no later round can be kept, and no resume "
        "can make one (a spent budget stays spent); round 2 is not kept. The run "
        "ends with the model of the rounds kept: its result"
    ) in summary["final_line"]
    assert summary["final_line"].startswith("final test accuracy")
    assert "after 1 round;" in summary["final_line"]


def test_a_failure_beside_spent_budgets_ends_the_run_without_a_resume(
    run_dir: Path,
) -> None:
    # Round 2 failed at client 1 under min_replies=2 and charged client 0, so
    # its re-run found client 0 spent and client 1 still failing: the run
    # failed "continue with resume=true to run it again", a resume that could
    # never have 2 updates, and each try would charge the clients left again.
    at_least_two = ("resume=true", "federation.min_replies=2")
    path = client_ledger_path(run_dir, 1)
    path.write_text(path.read_text()[:40])
    with pytest.raises(FedmodelError, match="fewer than federation.min_replies=2"):
        run_federation(FakeGrid(2), _settings(run_dir, *at_least_two))
    summary = run_federation(FakeGrid(2), _settings(run_dir, *at_least_two))
    assert (summary["status"], summary["rounds_completed"]) == ("ok", 1)
    assert "resume=true" not in summary["final_line"]
    assert (
        "teacher round 2: 0 accepted updates, and client 0 has spent its privacy "
        "budget: 1 of 2 clients has budget left"
    ) in summary["final_line"]
    # Client 1's failure is still recorded, each round it failed in.
    failed = [(f["client_id"], f["round"]) for f in summary["failed_clients"]]
    assert failed == [(1, 2)]
    assert (run_dir / "model").is_dir()


def _version_refused(client: int, server_round: int) -> Callable[[int, Message], None]:
    """A `before_train` after which `client` refuses `server_round` for good."""

    def refuse(node_client: int, message: Message) -> None:
        config = message.content[CONFIG_KEY]
        if (node_client, config["server-round"]) == (client, server_round):
            # A content of its own: the round's messages share one.
            content = RecordDict(dict(message.content))
            content[CONFIG_KEY] = ConfigRecord({**dict(config), VERSION_KEY: "0.0.0"})
            message.content = content

    return refuse


def test_a_central_round_short_of_min_replies_keeps_its_charged_model(
    tmp_path: Path,
) -> None:
    # privacy=central: the short round's noised model was charged to the
    # run's one budget, planned for num_rounds; run again, it would not fit.
    run_dir = tmp_path / "run"
    central = ("privacy=central", "privacy.target_epsilon=8")
    at_least_two = (*central, "federation.min_replies=2")
    grid = FakeGrid(2, before_train=_version_refused(1, 2))
    with pytest.raises(FedmodelError) as failure:
        run_federation(grid, _settings(run_dir, *at_least_two))
    message = str(failure.value)
    assert "round 2: 1 accepted update, fewer than federation.min_replies=2" in (
        message
    )
    assert "Round 2's noised model is kept, charged to the run's budget" in message
    assert load_checkpoint(run_dir, expected_shapes=_shapes(run_dir)).round == 2
    ledger = run_dir / "central_privacy_ledger.json"
    assert [r["round"] for r in json.loads(ledger.read_text())["rounds"]] == [1, 2]

    summary = run_federation(FakeGrid(2), _settings(run_dir, *central, "resume=true"))
    assert (summary["status"], summary["rounds_completed"]) == ("ok", 2)
    assert [r["round"] for r in json.loads(ledger.read_text())["rounds"]] == [1, 2]


def test_a_client_that_fails_for_good_stops_the_run_unless_allowed(
    run_dir: Path,
) -> None:
    # A ledger copied from another client is refused by client 1 itself.
    clients = run_dir / "clients"
    shutil.copy(
        clients / "client-0" / "privacy_ledger.json",
        clients / "client-1" / "privacy_ledger.json",
    )
    aside = Path(shutil.copytree(run_dir, run_dir.parent / "allowed"))
    with pytest.raises(FedmodelError) as failure:
        run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    message = str(failure.value)
    assert "round 2: client 1 failed (" in message
    assert "federation.allow_failed_clients=true" in message
    failed = _summary(run_dir)["failed_clients"]
    assert [(f["client_id"], f["round"], f["permanent"]) for f in failed] == [
        (1, 2, True)
    ]
    assert "privacy_ledger.json" in failed[0]["reason"]

    summary = run_federation(
        FakeGrid(2),
        _settings(aside, "resume=true", "federation.allow_failed_clients=true"),
    )
    assert summary["status"] == "ok"
    assert summary["rounds"][-1]["clients_aggregated"] == 1
    assert [f["client_id"] for f in summary["failed_clients"]] == [1]


@pytest.mark.parametrize("damage", ["deleted", "edited"])
def test_a_ledger_that_lost_charges_is_refused_on_resume(
    run_dir: Path, damage: str
) -> None:
    state = run_dir / "clients" / "client-0"
    before = client_ledger(run_dir, 0)
    if damage == "deleted":
        shutil.rmtree(state)
    else:
        # History, steps and stored epsilons edited alike, so the file agrees
        # with itself: only the server's record shows that it went back.
        history = [(h[0], h[1], 1) for h in before["history"]]
        spent = [
            epsilon_for(
                history[: i + 1],
                delta=before["delta"],
                accountant=before["accountant"],
            )
            for i in range(len(history))
        ]
        edited = {
            **before,
            "history": [list(h) for h in history],
            "rounds": [
                {**r, "steps": 1, "epsilon": e}
                for r, e in zip(before["rounds"], spent, strict=True)
            ],
        }
        (state / "privacy_ledger.json").write_text(json.dumps(edited))
    ledger = client_ledger_path(run_dir, 0)
    damaged = ledger.read_text() if ledger.exists() else None
    grid = FakeGrid(2)
    with pytest.raises(FedmodelError) as failure:
        run_federation(grid, _settings(run_dir, "resume=true"))
    message = str(failure.value)
    recorded = f"{before['rounds'][-1]['epsilon']:.4f}"
    charged = sum(entry[2] for entry in before["history"])
    held = "0 steps" if damage == "deleted" else "1 step"
    assert f"client 0 failed (its privacy ledger held {held} before this round" in (
        message
    )
    assert f"before this round, fewer than the {charged} the server" in message
    # Refused when the server asked what its ledger holds, before it trained:
    # it was sent no train message, and its ledger was charged nothing.
    trained = {m.metadata.dst_node_id for m in grid.sent if m.content.array_records}
    assert trained == {FIRST_NODE + 1}
    assert (ledger.read_text() if ledger.exists() else None) == damaged
    # A simulated client's way out is a new run: `fedmodel ledger reset`
    # refuses its folder (the message named it as for a site).
    assert "Restore the client's ledger, or start a new run" in message
    assert "ledger reset" not in message
    assert "Traceback" not in message
    summary = _summary(run_dir)
    assert [f["client_id"] for f in summary["failed_clients"]] == [0]
    # The refused report did not replace what the server knew.
    client_0 = next(c for c in summary["clients"] if c["client_id"] == 0)
    assert f"{client_0['epsilon']:.4f}" == recorded


def test_a_simulated_clients_archived_ledger_starts_no_new_budget(
    run_dir: Path,
) -> None:
    # Under `flwr run` no resume check reads the folder before round 2: the
    # server's ledger query refuses the archived ledger, which it took for a
    # site operator's reset before, stating client 0's epsilon from round 2.
    archive_ledger(run_dir / "clients" / "client-0")
    allowed = "federation.allow_failed_clients=true"
    summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true", allowed))
    (failed,) = summary["failed_clients"]
    assert (failed["client_id"], failed["round"]) == (0, 2)
    assert "Restore the client's ledger, or start a new run" in failed["reason"]
    assert not client_ledger_path(run_dir, 0).exists()  # nothing charged
    assert _charged_rounds(run_dir, 1) == [1, 2]


def test_rejected_updates_still_show_their_charges(run_dir: Path) -> None:
    grid = FakeGrid(2, nan_updates=True)
    with pytest.raises(FedmodelError, match="no client returned an update") as failure:
        run_federation(grid, _settings(run_dir, "resume=true"))
    assert "client 0: its update was rejected: weight" in str(failure.value)
    assert "holds NaN or inf" in str(failure.value)
    summary = _summary(run_dir)
    for client in summary["clients"]:
        ledger = client_ledger(run_dir, client["client_id"])
        assert client["ledger_epsilon"] == pytest.approx(
            ledger["rounds"][-1]["epsilon"]
        )
        assert client["ledger_rounds"] == 2
    assert summary["privacy_guarantee"]["epsilon"] == pytest.approx(
        max(c["ledger_epsilon"] for c in summary["clients"])
    )
    # The failed round is run again on resume, but the checkpoint keeps what
    # its clients reported: a ledger that loses that charge is refused.
    checkpoint = load_checkpoint(run_dir, expected_shapes=_shapes(run_dir))
    assert checkpoint.round == 1
    for client in summary["clients"]:
        figures = checkpoint.client_figures[client["client_id"]]
        assert figures["epsilon"] == pytest.approx(client["ledger_epsilon"])


def test_a_run_killed_before_its_first_checkpoint_resumes_at_round_one(
    run_dir: Path,
) -> None:
    shutil.rmtree(run_dir / "checkpoint")
    (run_dir / "checkpoint").mkdir()
    (run_dir / "checkpoint" / "state.pt.tmp").write_bytes(b"half a checkpoint")
    stale = run_dir / "clients" / "client-0" / ".privacy_ledger.json.x1y2.tmp"
    stale.write_text("{")
    # The config is written whole or not at all: a kill leaves a temp file.
    stale_config = run_dir / ".resolved_config.yaml.k3l4.tmp"
    stale_config.write_text("num_")
    summary = run_federation(FakeGrid(2), _settings(run_dir, "resume=true"))
    assert summary["status"] == "ok"
    # Round 1 ran again and was charged again (an over-count, never an
    # under-count), so the 2-round budget has no room for round 2.
    assert _charged_rounds(run_dir, 0) == [1, 1]
    assert [r["round"] for r in read_rounds(run_dir)] == [1, 2]
    assert [r["clients_aggregated"] for r in summary["rounds"]] == [2, 0]
    assert summary["rounds_completed"] == 1
    assert all(c["budget_exhausted"] for c in summary["clients"])
    # A refused round trained on nothing; the client still holds its records.
    assert all(c["num_train_examples"] == 50 for c in summary["clients"])
    assert not (run_dir / "checkpoint" / "state.pt.tmp").exists()
    assert not stale.exists() and not stale_config.exists()
    # The first start's resolved config is kept, not overwritten.
    first = yaml.safe_load((run_dir / "resolved_config.1.yaml").read_text())
    now = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert (first["resume"], now["resume"]) == (False, True)


@pytest.mark.slow  # exports and distils a student after the rounds
def test_student_rounds_are_numbered_on_from_the_teachers(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path / "run",
        "num_rounds=1",
        "distill=federated",
        "distill.rounds=1",
        "distill.epochs=1",
        "distill.student.num_layers=1",
        "distill.augment_copies=0",
    )
    grid = FakeGrid(2)
    summary = run_federation(grid, settings)
    run_dir = tmp_path / "run"
    assert [(r["round"], r.get("model", "teacher")) for r in read_rounds(run_dir)] == [
        (1, "teacher"),
        (2, "student"),
    ]
    assert [(r["round"], r["model"]) for r in summary["rounds"]] == [
        (1, "teacher"),
        (2, "student"),
    ]
    assert summary["rounds_completed"] == 1
    for client in (0, 1):
        assert _charged_rounds(run_dir, client) == [1, 2]
    student_messages = [m for m in grid.sent if "teacher" in m.content.array_records]
    assert [m.content["config"]["server-round"] for m in student_messages] == [2, 2]


def test_a_resume_whose_client_level_ledger_was_deleted_is_refused(
    tmp_path: Path,
) -> None:
    # privacy=central: the server's ledger is the run's one budget. Opened
    # empty on resume, it would spend that budget again on the same clients.
    run_dir = tmp_path / "run"
    central = ("privacy=central", "privacy.target_epsilon=8")

    with logging_restored(), pytest.raises(Killed):
        run_federation(
            FakeGrid(2, before_train=killed_at_round(2)), _settings(run_dir, *central)
        )
    ledger = run_dir / "central_privacy_ledger.json"
    assert [r["round"] for r in json.loads(ledger.read_text())["rounds"]] == [1]
    ledger.unlink()
    with pytest.raises(FedmodelError) as refused:
        run_federation(FakeGrid(2), _settings(run_dir, *central, "resume=true"))
    assert f"the client-level privacy ledger {ledger} does not exist" in str(
        refused.value
    )
    assert not ledger.exists()


@pytest.mark.parametrize(("selected", "warned"), [(2, False), (3, True)])
def test_more_nodes_selected_than_num_clients_is_said_before_they_train(
    selected: int, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # A deployment whose third SuperNode is online trains it too: the server
    # says so before the round, naming the count to set.
    plan = RoundPlan(
        rounds=range(1, 4),
        model_name="teacher",
        train_config=ConfigRecord({}),
        timeout=60.0,
        num_clients=2,
        min_replies=1,
    )
    caplog.set_level(logging.WARNING, logger="fedmodel.federation.rounds")
    check_selected_count(plan, selected)
    assert (
        "3 nodes were selected to train, but num_clients is 2" in caplog.text
    ) is warned
    assert ("Set num_clients=3" in caplog.text) is warned
