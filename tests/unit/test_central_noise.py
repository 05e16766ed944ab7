"""privacy=central: a Poisson sample's clipped updates summed over q N, and noised."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.federation import adaptive_clipping
from fedmodel.federation.adaptive_clipping import (
    LedgeredAdaptiveClipping,
    next_clipping_norm,
)
from fedmodel.federation.messages import ARRAYS_KEY, METRICS_KEY
from fedmodel.federation.server_app import run_federation
from fedmodel.federation.server_setup import write_resolved_config
from fedmodel.privacy.accountants import PRV_MAX_STEPS
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.client_level import plan_client_level
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.run.folder_check import check_run_folder
from fedmodel.run.layout import checkpoint_file
from fedmodel.run.metrics import read_rounds
from tests.conftest import logging_restored, reply_metadata, small_settings
from tests.fake_grid import FAKE_GRID_RUN, FakeGrid, Killed, killed_at_round

SIZE = 200_000


def _reply(node: int, update: np.ndarray) -> Message:
    content = RecordDict(
        {
            ARRAYS_KEY: ArrayRecord({"w": Array(update)}),
            METRICS_KEY: MetricRecord({"num-examples": 10.0}),
        }
    )
    return Message(content=content, metadata=reply_metadata(node))


def _wrapper(tmp_path: Path, *overrides: str) -> LedgeredAdaptiveClipping:
    """The server's clipping, noise and ledger, at a model of zeros."""
    settings = small_settings("privacy=central", *overrides)
    ledger = PrivacyLedger.open(
        tmp_path / "ledger.json",
        client_id="server",
        plan=plan_client_level(settings),
        data_fingerprint="test",
    )
    dp = LedgeredAdaptiveClipping(FedAvg(), settings=settings, ledger=ledger)
    dp.current_arrays = ArrayRecord({"w": Array(np.zeros(SIZE, dtype=np.float64))})
    return dp


def _seeded_noise(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Every round's noise from a generator seeded with `seed`, to replay it."""
    monkeypatch.setattr(
        adaptive_clipping, "round_noise", lambda: np.random.default_rng(seed)
    )


def test_the_noise_covers_the_norm_the_round_clipped_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every update is far above the norm, so every one is clipped and the norm
    # moves for the next round; a large step makes the two norms far apart.
    dp = _wrapper(tmp_path, "privacy.clip_norm_lr=1.0")
    ledger = dp.ledger
    update = np.full(SIZE, 1.0)
    m = int(dp.num_sampled_clients)  # q = 1: every one of the 3 clients
    replies = [_reply(node, update) for node in range(1, m + 1)]
    clipped_to = dp.clipping_norm
    _seeded_noise(monkeypatch, 0)

    aggregated, _ = dp.aggregate_train(1, replies)

    assert aggregated is not None
    clipped_mean = clipped_to / np.sqrt(SIZE)  # each coordinate of a clipped update
    noise = aggregated.to_numpy_ndarrays()[0] - clipped_mean
    needed = dp.noise_multiplier * clipped_to / dp.num_sampled_clients
    assert noise.std() == pytest.approx(needed, rel=0.02)
    # The ledger is charged at z for the update and the clipped count
    # together; Flower's wrapper must raise the update's share to z_D =
    # (z^-2 - (2 sigma_b)^-2)^-1/2 (Andrew et al., Theorem 1), else the
    # count's release would be spent on top of what the ledger holds.
    z, sigma_b = ledger.noise_multiplier, dp.clipped_count_stddev
    assert dp.noise_multiplier == pytest.approx((z**-2 - (2 * sigma_b) ** -2) ** -0.5)
    assert dp.noise_multiplier > z
    # The norm still adapts, for the next round, from the noised count of
    # clipped updates (the round's first draw), in the paper's direction:
    # every update was clipped, so it grows unless the count's noise took the
    # fraction under the target.
    clipped_fraction = np.random.default_rng(0).normal(m, dp.clipped_count_stddev) / m
    assert dp.clipping_norm == pytest.approx(
        clipped_to * np.exp(1.0 * (clipped_fraction - 0.5))
    )
    assert len(ledger.history) == 1


def test_one_client_moves_the_noised_clipped_count_by_half_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flower splits z into update noise z_D and count noise sigma_b with
    # z^-2 = z_D^-2 + (2 sigma_b)^-2, which holds where one client moves the
    # count by 1/2 (Andrew et al.). A raw count of clipped updates moves by 1:
    # at the default sigma_b = z the mechanism's noise multiplier was
    # z / sqrt(1.75), an epsilon of 14.3 charged as 8 (6 of 6 clients' rounds
    # at q = 0.3).
    def count_moved(extra: list[Message], run: str) -> float:
        fractions = []
        for replies in ([_reply(1, np.full(SIZE, 1.0))], extra):
            dp = _wrapper(tmp_path / run / str(len(replies)), "num_clients=4")
            before = dp.clipping_norm
            _seeded_noise(monkeypatch, 0)  # the same count noise for both
            dp.aggregate_train(1, replies)
            moved = np.log(dp.clipping_norm / before) / dp.clip_norm_lr
            fractions.append(moved + dp.target_clipped_quantile)
        return (fractions[1] - fractions[0]) * dp.num_sampled_clients

    one = _reply(1, np.full(SIZE, 1.0))
    clipped = count_moved([one, _reply(2, np.full(SIZE, 1.0))], "clipped")
    unclipped = count_moved([one, _reply(2, np.full(SIZE, 1e-9))], "unclipped")
    assert clipped == pytest.approx(0.5)
    assert unclipped == pytest.approx(-0.5)


def test_the_noise_cannot_be_replayed_from_numpys_global_seed(tmp_path: Path) -> None:
    # Flower's helpers drew from numpy's global generator: any code in the
    # server process that seeded it made the noise reproducible, and so
    # subtractable from the released model, by whoever knew the seed.
    released = []
    for run in ("a", "b"):
        dp = _wrapper(tmp_path / run)
        np.random.seed(0)
        aggregated, _ = dp.aggregate_train(1, [_reply(1, np.full(SIZE, 1.0))])
        assert aggregated is not None
        released.append(aggregated.to_numpy_ndarrays()[0])
    assert not np.allclose(released[0], released[1])


@pytest.mark.parametrize(
    ("clipped_fraction", "moves"), [(1.0, "up"), (0.0, "down"), (0.5, "not")]
)
def test_the_norm_settles_where_the_target_fraction_is_clipped(
    clipped_fraction: float, moves: str
) -> None:
    # Andrew et al.: too many updates clipped means the norm is too small.
    norm = next_clipping_norm(2.0, clipped_fraction, target=0.5, step=0.2)
    assert {"up": norm > 2.0, "down": norm < 2.0, "not": norm == 2.0}[moves]


def test_client_level_dp_is_accounted_at_the_sample_rate_it_draws_with() -> None:
    # Each client takes part with probability fraction_train, independently:
    # the Poisson sampling the accountant's q assumes. min_train_clients does
    # not change it (before, fraction 0.5 with min_train_clients=4 sampled
    # all 4 clients, and any fixed-size sample of fewer was refused).
    every = plan_client_level(small_settings("privacy=central", "num_clients=4"))
    assert every.sample_rate == 1.0
    for overrides in [(), ("strategy.min_train_clients=4",)]:
        settings = small_settings(
            "privacy=central",
            "num_clients=4",
            "strategy.fraction_train=0.5",
            *overrides,
        )
        plan = plan_client_level(settings)
        assert plan.sample_rate == 0.5
        assert plan.noise_multiplier < every.noise_multiplier  # amplification
        spent = epsilon_for(
            [(plan.noise_multiplier, 0.5, plan.planned_rounds)],
            delta=plan.delta,
            accountant=plan.accountant,
        )
        assert spent == pytest.approx(plan.target_epsilon, rel=0.01)


def test_each_node_takes_part_with_probability_q(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dp = _wrapper(tmp_path, "num_clients=4", "strategy.fraction_train=0.25")
    dp.strategy.fraction_train = 1.0  # as ClientLevelDPStrategy sets it
    monkeypatch.setattr(adaptive_clipping, "_SAMPLER", random.Random(7))
    grid = FakeGrid(400)
    draws = [
        {
            m.metadata.dst_node_id
            for m in dp.configure_train(r, dp.current_arrays, ConfigRecord(), grid)
        }
        for r in range(1, 4)
    ]
    assert sorted(dp.nodes) == list(grid.get_node_ids())  # every node was drawn for
    for drawn in draws:
        assert abs(len(drawn) - 100) < 30  # 400 x 0.25, 3 standard deviations
    assert len({frozenset(d) for d in draws}) == 3  # a new draw each round


def test_the_sum_is_divided_by_q_n_whoever_replied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # q = 0.5 of 4 clients: the sum of the clipped updates over 2, whether
    # one client replied or three. The mean of those that replied would let
    # how many took part show in the model, and its noise would not cover it.
    dp = _wrapper(tmp_path, "num_clients=4", "strategy.fraction_train=0.5")
    assert dp.num_sampled_clients == 2.0
    clipped_to = dp.clipping_norm
    for replied in (1, 3):
        replies = [_reply(n, np.full(SIZE, 1.0)) for n in range(1, replied + 1)]
        # The round draws the count's noise, then the model's.
        replay = np.random.default_rng(replied)
        replay.normal(0, dp.clipped_count_stddev)
        noise = replay.normal(0, dp.noise_multiplier * clipped_to / 2.0, SIZE)
        _seeded_noise(monkeypatch, replied)
        dp.clipping_norm = clipped_to

        aggregated, _ = dp.aggregate_train(replied, replies)

        assert aggregated is not None
        step = aggregated.to_numpy_ndarrays()[0] - noise
        each = clipped_to / np.sqrt(SIZE)  # a coordinate of one clipped update
        assert step == pytest.approx(np.full(SIZE, replied * each / 2.0))


def test_a_round_that_drew_no_client_is_noised_and_charged(tmp_path: Path) -> None:
    # A model left as it was would show that no client took part, which the
    # accountant's Poisson sampling does not allow for.
    dp = _wrapper(tmp_path, "num_clients=4", "strategy.fraction_train=0.5")
    std = dp.noise_multiplier * dp.clipping_norm / 2.0

    aggregated, _ = dp.aggregate_train(1, [])

    assert aggregated is not None
    assert aggregated.to_numpy_ndarrays()[0].std() == pytest.approx(std, rel=0.02)
    assert [r.round for r in dp.ledger.rounds] == [1]
    assert dp.ledger.history == [(dp.ledger.noise_multiplier, 0.5, 1)]


def test_a_run_goes_on_through_a_round_that_drew_no_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two clients at q = 0.5: the draw takes client 0 in round 1, no one in
    # round 2 and both in round 3. Every round is charged, and the epsilon
    # is the Poisson-sampled mechanism's over all three.
    draws = iter([0.1, 0.9, 0.9, 0.9, 0.1, 0.1])
    monkeypatch.setattr(adaptive_clipping._SAMPLER, "random", lambda: next(draws))
    settings = settings_from_dict(
        {
            **compose_config(
                [
                    *FAKE_GRID_RUN,
                    "privacy=central",
                    "privacy.target_epsilon=8",
                    "strategy.fraction_train=0.5",
                    "num_rounds=3",
                    "distill=off",
                    "warm_start.enabled=false",
                ]
            ),
            "run_dir": str(tmp_path),
        }
    )
    plan = plan_client_level(settings)

    summary = run_federation(FakeGrid(2), settings)

    rounds = read_rounds(tmp_path)
    assert [r["clients_selected"] for r in rounds] == [1, 0, 2]
    assert [r["clients_aggregated"] for r in rounds] == [1, 0, 2]
    ledger = json.loads((tmp_path / "central_privacy_ledger.json").read_text())
    assert [r["round"] for r in ledger["rounds"]] == [1, 2, 3]
    expected = epsilon_for(
        [(plan.noise_multiplier, 0.5, 3)], delta=plan.delta, accountant=plan.accountant
    )
    assert summary["privacy_guarantee"]["epsilon"] == pytest.approx(expected)
    assert rounds[-1]["epsilon_max"] == pytest.approx(expected)
    # Round 2's noise changed the model and was charged: it counts as run
    # (before, 2 rounds), in summary.json, the console's last line and the
    # model card, which would otherwise tell the model's holders that a draw
    # came out empty.
    assert summary["rounds_completed"] == 3
    assert summary["final_line"].split("; ")[0].endswith("after 3 rounds")
    assert "over 3 rounds" in (tmp_path / "model" / "README.md").read_text()


def test_a_resume_keeps_the_sample_rate_the_ledger_was_charged_at(
    tmp_path: Path,
) -> None:
    # fraction_train is the plan's q; min_train_clients no longer changes it
    # (a change to it was refused before, as if it set the sample rate).
    central = ("privacy=central", "num_clients=4", "strategy.fraction_train=0.5")
    write_resolved_config(tmp_path, small_settings(*central))
    more = small_settings(*central, "resume=true", "strategy.min_train_clients=3")
    check_run_folder(tmp_path, more)
    with pytest.raises(FedmodelError, match=r"strategy.fraction_train=0.25"):
        check_run_folder(
            tmp_path,
            small_settings(*central, "resume=true", "strategy.fraction_train=0.25"),
        )


@pytest.mark.parametrize(
    "changed",
    ["strategy.fraction_train=0.25", "privacy.target_epsilon=50", "num_rounds=50"],
)
def test_a_deployed_central_resume_keeps_the_servers_plan(
    tmp_path: Path, changed: str
) -> None:
    # The sites cap their own record-level ledgers, but the client-level
    # budget is the server's ledger in the run folder: a deployed resume
    # took a raised target or another sample rate without a word.
    central = (
        "privacy=central",
        "federation=deployment",
        "num_clients=4",
        "strategy.fraction_train=0.5",
    )
    write_resolved_config(tmp_path, small_settings(*central))
    check_run_folder(tmp_path, small_settings(*central, "resume=true"))
    with pytest.raises(FedmodelError, match=changed.replace(".", r"\.")):
        check_run_folder(tmp_path, small_settings(*central, "resume=true", changed))


def test_a_strategy_central_dp_cannot_noise_is_named_as_the_user_picks_it() -> None:
    # It said "strategy.name in ['fedavg', 'fedprox']": a user picks the group.
    with pytest.raises(FedmodelError) as refused:
        plan_client_level(small_settings("privacy=central", "strategy=fedadam"))
    assert str(refused.value) == (
        "privacy=central needs strategy=fedavg or strategy=fedprox, got "
        "strategy=fedadam: its noise is calibrated for a plain sum of clipped "
        "updates; choose one of those, or privacy=dpsgd"
    )


def test_client_level_prv_past_the_step_limit_is_refused_naming_num_rounds() -> None:
    # One step a round: PRV's grid would grow with num_rounds as with DP-SGD's
    # steps; RDP's cost does not.
    rounds = PRV_MAX_STEPS + 1
    long_run = ("privacy=central", "num_clients=4", f"num_rounds={rounds}")
    with pytest.raises(FedmodelError) as refused:
        plan_client_level(small_settings(*long_run))
    message = str(refused.value)
    assert f"has {rounds} steps (client-level DP: one step a round" in message
    assert "Lower num_rounds, or set privacy.accountant=rdp" in message
    settings = small_settings(*long_run, "privacy.accountant=rdp")
    assert plan_client_level(settings).planned_rounds == rounds


def test_a_resumed_run_clips_at_the_norm_its_rounds_had_moved_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the checkpoint did not keep the adaptive norm, and a resumed run
    # clipped from privacy.initial_clipping_norm again.
    clipped_to: list[float] = []

    def spy(norm: float, clipped_fraction: float, **step: float) -> float:
        clipped_to.append(norm)  # the norm this round clipped to, then moves
        return next_clipping_norm(norm, clipped_fraction, **step)

    monkeypatch.setattr(adaptive_clipping, "next_clipping_norm", spy)
    raw = compose_config(
        [
            *FAKE_GRID_RUN,
            "privacy=central",
            "num_rounds=3",
            "distill=off",
            "privacy.clip_norm_lr=1.0",
        ]
    )

    with logging_restored(), pytest.raises(Killed):
        run_federation(
            FakeGrid(2, before_train=killed_at_round(3)),
            settings_from_dict({**raw, "run_dir": str(tmp_path)}),
        )
    kept = torch.load(checkpoint_file(tmp_path))["clipping_norm"]
    assert kept > 0 and kept != clipped_to[1]  # it moved after round 2
    resumed = {**raw, "resume": True, "run_dir": str(tmp_path)}
    run_federation(FakeGrid(2), settings_from_dict(resumed))
    assert clipped_to[2] == pytest.approx(kept)
