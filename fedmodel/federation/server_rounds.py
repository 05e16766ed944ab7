"""The teacher's rounds and the student's (federated distillation) on one loop.

Both call `rounds.run_rounds` with their own model and callbacks; they share
the budget state, the failure watch, the round history and the metrics file
(a `SharedRoundState`, which `prepare_rounds` makes), and the student's
rounds are numbered on from the teacher's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid

from fedmodel import __version__
from fedmodel.config import RunSettings, to_run_config
from fedmodel.config.modes import SIMULATION
from fedmodel.data.tasks import TaskData
from fedmodel.errors import FedmodelError
from fedmodel.federation.budget_stop import BudgetStop
from fedmodel.federation.callbacks import (
    CompareWithStart,
    ConsoleLine,
    Evaluate,
    RoundHistory,
    WriteMetrics,
)
from fedmodel.federation.central_dp import ClientLevelDPStrategy
from fedmodel.federation.checkpointing import SaveCheckpoint
from fedmodel.federation.failure_watch import FailureWatch
from fedmodel.federation.messages import TEACHER_KEY, VERSION_KEY
from fedmodel.federation.round_state import RoundCallback
from fedmodel.federation.rounds import RoundPlan, run_rounds
from fedmodel.federation.strategy import BudgetAwareStrategy
from fedmodel.federation.strategy_choice import build_strategy, client_choice
from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.head import load_trainable_state, trainable_state
from fedmodel.model.student import prepare_student_for_distillation
from fedmodel.privacy.client_level import check_central_ledger_kept
from fedmodel.run.checkpoint import Checkpoint
from fedmodel.run.layout import CHECKPOINT_DIR
from fedmodel.training.embedding_cache import length_sorted_loader
from fedmodel.training.global_model import GlobalModel
from fedmodel.training.loops import evaluate, text_logits
from fedmodel.training.model_selection import LastRoundOrStart


@dataclass
class SharedRoundState:
    """What the teacher's and the student's rounds share."""

    grid: Grid
    settings: RunSettings
    run_dir: Path
    strategy: BudgetAwareStrategy
    history: RoundHistory
    watch: FailureWatch
    writer: WriteMetrics
    train_config: ConfigRecord
    # keep_best's selector: it scores each teacher round on the server's own
    # split, and the checkpoint carries its start (a resume offers it again).
    selector: LastRoundOrStart | None = None
    # The checkpoint this run resumed from, and the callback that writes the
    # next (None with checkpoint_every_round off).
    resumed: Checkpoint | None = None
    saver: SaveCheckpoint | None = None
    # The run's start on the test split, which each checkpoint carries (None:
    # resumed from a checkpoint that did not keep it).
    start_result: dict[str, float] | None = None
    # Why the rounds ended with too few clients of budget left for
    # federation.min_replies (`BudgetStop.ended`), for the run's final line.
    budget_end: str | None = None

    def budget_stop(self, strategy: BudgetAwareStrategy, *, last: int) -> BudgetStop:
        """The budget stop of a loop whose last round is `last`."""
        return BudgetStop(
            strategy,
            num_clients=self.settings.num_clients,
            min_replies=self.settings.federation.min_replies,
            last_round=last,
        )

    @property
    def failure(self) -> str | None:
        """Why the run failed, unless too few clients of budget are left anyway.

        A failure is there to be fixed and resumed; with fewer clients of budget
        left than federation.min_replies, no resume could keep a round, and the
        run ends as a spent one does (`budget_end`; the failures stay listed).
        """
        return None if self.budget_end else self.watch.fatal

    @property
    def last_round(self) -> int:
        """The last round number run so far (0 before any)."""
        return max((r["round"] for r in self.history.rounds), default=0)


def prepare_rounds(
    grid: Grid,
    settings: RunSettings,
    *,
    model: GlobalModel,
    run_dir: Path,
    resumed: Checkpoint | None,
) -> SharedRoundState:
    """The teacher's strategy (budget-aware, central DP if asked) and shared state.

    A resumed run keeps what each client last reported, whether its budget is
    spent among it, but not which nodes it came from (`spent_budgets.py`); it
    tries again the clients that failed: resuming is how a user continues
    after fixing them.
    """
    weights = model.weights()
    simulated = settings.federation.name == SIMULATION
    strategy = BudgetAwareStrategy(
        build_strategy(settings.strategy, num_clients=settings.num_clients),
        expected_shapes={name: tuple(w.shape) for name, w in weights.items()},
        simulated=simulated,
        privacy_figures=settings.privacy.record_level,
        # A simulation numbers its clients; a deployment's sites name their
        # own ids, and a site past num_clients trains (the round warns).
        client_ids=range(settings.num_clients) if simulated else None,
        choice=client_choice(settings),
    )
    if settings.privacy.client_level:
        if resumed is not None:  # `simulate` checked it before Flower; `flwr run`
            check_central_ledger_kept(run_dir, resumed.client_figures)
        strategy = ClientLevelDPStrategy(strategy, settings=settings)
        if resumed is not None and resumed.clipping_norm is not None:
            strategy.dp.clipping_norm = resumed.clipping_norm  # as it had moved
    if resumed is not None:
        strategy.client_figures.update(resumed.client_figures)
    if isinstance(strategy, ClientLevelDPStrategy):
        strategy.report_ledger()  # a round charged after the checkpoint counts
    return SharedRoundState(
        grid=grid,
        settings=settings,
        run_dir=run_dir,
        strategy=strategy,
        history=RoundHistory(None if resumed is None else resumed.rounds),
        watch=FailureWatch(
            allow_failed=settings.federation.allow_failed_clients,
            min_replies=settings.federation.min_replies,
        ),
        writer=WriteMetrics(run_dir),
        train_config=ConfigRecord(
            {**to_run_config(asdict(settings)), VERSION_KEY: __version__}
        ),
        resumed=resumed,
    )


def train_teacher(shared: SharedRoundState, model: GlobalModel) -> Evaluate:
    """The teacher's rounds after the last one run; returns their evaluator."""
    settings = shared.settings
    selector = shared.selector
    evaluation = Evaluate(model.evaluate)
    callbacks: list[RoundCallback] = [shared.history]
    if settings.checkpoint_every_round:
        shared.saver = SaveCheckpoint(
            shared.run_dir,
            strategy=shared.strategy,
            weights=model.weights,
            label_names=model.label_names,
            history=shared.history,
            selector=selector,
            resumed=shared.resumed,
            start_result=shared.start_result,
        )
        callbacks.append(shared.saver)
    callbacks += [shared.watch, evaluation]
    if selector is not None:
        callbacks.append(CompareWithStart(selector, model.weights))
    stop = shared.budget_stop(shared.strategy, last=settings.num_rounds)
    console = ConsoleLine(
        settings.num_rounds, min_replies=settings.federation.min_replies
    )
    callbacks += [shared.writer, console, stop]
    run_rounds(
        shared.grid,
        strategy=shared.strategy,
        arrays=ArrayRecord(model.weights()),
        plan=RoundPlan(
            rounds=range(shared.last_round + 1, settings.num_rounds + 1),
            model_name="teacher",
            train_config=shared.train_config,
            timeout=settings.federation.round_timeout,
            num_clients=settings.num_clients,
            min_replies=settings.federation.min_replies,
            check_ledgers=settings.privacy.record_level,
        ),
        load=lambda arrays: model.load(arrays.to_torch_state_dict()),
        callbacks=callbacks,
    )
    shared.budget_end = stop.ended
    return evaluation


def distill_on_clients(
    shared: SharedRoundState,
    student: PooledBertForSequenceClassification,
    *,
    teacher_weights: dict[str, torch.Tensor],
    task: TaskData,
) -> None:
    """Federated distillation: `distill.rounds` rounds of the student on the clients.

    Each message carries the student's trainable weights and the teacher's;
    clients distil on their own records as in the teacher's rounds (under
    privacy=dpsgd, with DP-SGD, charging their ledgers), in rounds numbered on
    from them. Clients that spent their budget or failed are not selected.
    Stops early if the teacher's rounds ended on a failure or with too few
    clients of budget left for federation.min_replies (no student round could
    be kept). A resumed run continues from the student the checkpoint holds,
    after its last round.
    """
    if shared.watch.fatal or shared.budget_end:
        return
    settings = shared.settings
    prepare_student_for_distillation(student)
    first = _resume_student(shared, student)
    weights = trainable_state(student)
    strategy = shared.strategy.for_other_weights(
        build_strategy(settings.strategy, num_clients=settings.num_clients),
        expected_shapes={name: tuple(w.shape) for name, w in weights.items()},
    )
    loader = length_sorted_loader(settings, task.test)
    total = settings.num_rounds + settings.distill.rounds
    callbacks: list[RoundCallback] = [shared.history]
    if shared.saver is not None:
        callbacks.append(shared.saver.for_student(lambda: trainable_state(student)))
    stop = shared.budget_stop(strategy, last=total)
    callbacks += [
        shared.watch,
        Evaluate(lambda: evaluate(student, loader, logits_fn=text_logits(student))),
        shared.writer,
        ConsoleLine(total, min_replies=settings.federation.min_replies),
        stop,
    ]
    run_rounds(
        shared.grid,
        strategy=strategy,
        arrays=ArrayRecord(weights),
        plan=RoundPlan(
            rounds=range(first, total + 1),
            model_name="student",
            train_config=shared.train_config,
            timeout=settings.federation.round_timeout,
            num_clients=settings.num_clients,
            min_replies=settings.federation.min_replies,
            extra={TEACHER_KEY: ArrayRecord(teacher_weights)},
            check_ledgers=settings.privacy.record_level,
        ),
        load=lambda arrays: load_trainable_state(student, arrays.to_torch_state_dict()),
        callbacks=callbacks,
    )
    shared.budget_end = stop.ended


def _resume_student(
    shared: SharedRoundState, student: PooledBertForSequenceClassification
) -> int:
    """The student's first round; on resume, load the checkpoint's student."""
    resumed = shared.resumed
    if resumed is None or resumed.student_round is None:
        return shared.settings.num_rounds + 1
    assert resumed.student_weights is not None  # load_checkpoint checks both
    expected = {name: tuple(w.shape) for name, w in trainable_state(student).items()}
    saved = {name: tuple(w.shape) for name, w in resumed.student_weights.items()}
    if saved != expected:
        raise FedmodelError(
            f"the checkpoint in {shared.run_dir / CHECKPOINT_DIR} holds a student "
            "of another shape: resume with the run's distill.student settings"
        )
    load_trainable_state(student, resumed.student_weights)
    return resumed.student_round + 1
