import math
import os
import subprocess
import sys

import pytest
import torch
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.data_loader import DPDataLoader
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.config import compose_config
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import PRV_MAX_STEPS, composed_epsilon, rdp_epsilon
from fedmodel.privacy.calibration import calibrate_noise, epsilon_for
from fedmodel.privacy.client_plan import PrivacyPlan, choose_delta, plan_privacy
from fedmodel.privacy.sampling import poisson_steps_per_epoch, sample_rate_for


@pytest.mark.parametrize(
    ("accountant", "target", "sample_rate", "steps", "delta"),
    [
        ("rdp", 8.0, 1 / 16, 160, 1e-4),
        ("rdp", 3.0, 1 / 63, 630, 1e-5),
        ("rdp", 1.0, 0.1, 50, 1e-3),
        ("prv", 8.0, 1 / 16, 160, 1e-4),
        ("prv", 1.0, 0.1, 50, 1e-3),
        # Answers below and far above noise 1, where the search starts.
        ("rdp", 50.0, 0.5, 10, 1e-5),
        ("prv", 50.0, 0.5, 10, 1e-5),
        ("prv", 0.05, 0.01, 1000, 1e-5),
    ],
)
def test_calibration_hits_target_from_below(
    accountant: str, target: float, sample_rate: float, steps: int, delta: float
) -> None:
    sigma = calibrate_noise(
        target_epsilon=target,
        delta=delta,
        sample_rate=sample_rate,
        steps=steps,
        accountant=accountant,
    )
    spent = epsilon_for(
        [(sigma, sample_rate, steps)], delta=delta, accountant=accountant
    )
    assert target - 0.01 <= spent <= target
    # As little noise as Opacus' own search finds, to within 2%.
    reference = get_noise_multiplier(
        target_epsilon=target,
        target_delta=delta,
        sample_rate=sample_rate,
        steps=steps,
        accountant=accountant,
    )
    assert sigma <= 1.02 * reference


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_epsilon_for_is_a_fresh_opacus_accountant(accountant: str) -> None:
    history = [(1.1, 0.05, 40), (0.9, 0.1, 10)]
    reference = create_accountant(mechanism=accountant)
    reference.history = list(history)
    expected = reference.get_epsilon(delta=1e-5)
    # Asked twice (the second answer is remembered): the same value.
    for _ in range(2):
        assert epsilon_for(history, delta=1e-5, accountant=accountant) == (
            pytest.approx(expected, rel=1e-12)
        )


@pytest.mark.parametrize(
    ("history", "delta"),
    [
        (((1.1, 0.01, 300),), 1e-5),  # one phase, a strict budget
        (((2.8878, 0.2, 600),), 4.14e-5),  # the default bank client at epsilon 8
        (((0.6, 0.2, 40),), 1e-4),  # weak noise: a large epsilon, a wider error
        (((2.3, 0.5, 12), (1.4, 0.3, 30), (0.9, 0.05, 7)), 1e-6),  # phases
        (((5.0, 1.0, 1),), 1e-3),  # one full-batch step
    ],
)
def test_prv_sizes_its_domain_as_opacus_does(
    history: tuple[tuple[float, float, int], ...], delta: float
) -> None:
    # PRV's domain is sized from RDP vectors remembered per (noise, rate),
    # not from a fresh RDPAccountant each call: the very float Opacus' PRV
    # accountant gives at the error allowance ours chose.
    composed_epsilon.cache_clear()
    ours = composed_epsilon(history, delta, "prv")
    allowance = max(0.01, rdp_epsilon(history, delta) / 1000)
    reference = create_accountant(mechanism="prv")
    reference.history = list(history)
    # On one BLAS thread, as composed_epsilon runs: PRV's dot product sums in
    # chunks whose order follows the thread count (the module's docstring).
    with threadpool_limits(limits=1, user_api="blas"):
        assert ours == reference.get_epsilon(delta=delta, eps_error=allowance)


@pytest.mark.parametrize(
    "history",
    [
        ((1.1, 0.05, 40),),
        ((1.1, 0.05, 40), (0.9, 0.1, 10)),
        ((2.8878, 0.2, 600),),
        ((0.3, 0.5, 3), (12.0, 0.01, 99_999)),
    ],
)
def test_rdp_epsilon_is_exactly_opacus_rdp_accountant(
    history: tuple[tuple[float, float, int], ...],
) -> None:
    # rdp_epsilon remembers one step's RDP per (noise, rate) and multiplies
    # it by the steps, as Opacus does: the very float, asked once or again.
    reference = create_accountant(mechanism="rdp")
    reference.history = list(history)
    for delta in (1e-5, 4.14e-05):
        expected = reference.get_epsilon(delta=delta)
        for _ in range(2):
            assert rdp_epsilon(history, delta) == expected


def test_runs_charge_with_prv_which_needs_less_noise_than_rdp() -> None:
    # The packaged default: PRV's epsilon is an upper bound (Opacus returns the
    # top of its error interval) and is tighter than RDP's, so the same target
    # takes less noise. A bank-sized client at epsilon 1: 6 epochs of 5
    # batches for 10 rounds.
    assert compose_config([])["privacy"]["accountant"] == "prv"
    plan = {"delta": 1 / 25000, "sample_rate": 0.2, "steps": 300}
    prv = calibrate_noise(target_epsilon=1.0, accountant="prv", **plan)
    rdp = calibrate_noise(target_epsilon=1.0, accountant="rdp", **plan)
    assert prv < 0.95 * rdp
    # PRV's noise spends more than the target under RDP's looser bound, and
    # within it under PRV's.
    history = [(prv, plan["sample_rate"], plan["steps"])]
    assert epsilon_for(history, delta=plan["delta"], accountant="rdp") > 1.0
    assert epsilon_for(history, delta=plan["delta"], accountant="prv") <= 1.0


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_round_by_round_history_reads_as_the_planned_single_entry(
    accountant: str,
) -> None:
    per_round = [(1.0, 0.1, 20)] * 5
    planned = [(1.0, 0.1, 100)]
    assert epsilon_for(per_round, delta=1e-4, accountant=accountant) == epsilon_for(
        planned, delta=1e-4, accountant=accountant
    )


def test_epsilon_for_edge_cases() -> None:
    assert epsilon_for([], delta=1e-5, accountant="rdp") == 0.0
    assert epsilon_for([(0.0, 0.1, 5)], delta=1e-5, accountant="rdp") == math.inf
    with pytest.raises(ValueError, match="steps"):
        epsilon_for([(1.0, 0.1, -5)], delta=1e-5, accountant="rdp")
    with pytest.raises(FedmodelError, match="gdp"):
        epsilon_for([(1.0, 0.1, 5)], delta=1e-5, accountant="gdp")


def test_choose_delta() -> None:
    assert choose_delta(500, None) == pytest.approx(1 / 5000)
    assert choose_delta(500, 1e-4) == 1e-4
    with pytest.raises(FedmodelError, match=r"1/500 for client 'h1'.*target_delta"):
        choose_delta(500, 1e-2, client_id="h1")
    with pytest.raises(FedmodelError, match="1/500"):
        choose_delta(500, 1 / 500)
    with pytest.raises(FedmodelError, match="0 training records"):
        choose_delta(0, None)


@pytest.mark.parametrize(
    ("num_records", "batch_size"), [(500, 32), (64, 8), (10, 32), (372, 4), (1, 1)]
)
def test_sample_rate_and_steps_match_opacus_loader(
    num_records: int, batch_size: int
) -> None:
    dataset = TensorDataset(torch.zeros(num_records, 2))
    dp_loader = DPDataLoader.from_data_loader(
        DataLoader(dataset, batch_size=batch_size)
    )
    assert sample_rate_for(num_records, batch_size) == dp_loader.sample_rate
    assert poisson_steps_per_epoch(num_records, batch_size) == len(dp_loader)


def test_opacus_yields_one_batch_fewer_for_some_sizes() -> None:
    # 372 / 4 = 93 batches, but int(1 / (1 / 93)) == 92 in floating point.
    assert math.ceil(372 / 4) == 93
    assert poisson_steps_per_epoch(372, 4) == 92


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_a_target_below_what_the_most_noise_spends_is_unreachable(
    accountant: str,
) -> None:
    # privacy=central, 4 clients (delta 0.025), every one each of 1000 rounds:
    # at noise 1e6 either accountant's epsilon fell below 0, and the error
    # was "the prv privacy accountant failed (epsilon -0.0153 ...); set
    # privacy.accountant=rdp", whose own error said to set prv.
    with pytest.raises(FedmodelError) as raised:
        calibrate_noise(
            target_epsilon=1e-5,
            delta=0.025,
            sample_rate=1.0,
            steps=1000,
            accountant=accountant,
        )
    assert "target epsilon 1e-05 cannot be reached" in str(raised.value)
    assert "privacy.target_epsilon" in str(raised.value)
    assert "accountant failed" not in str(raised.value)


def test_unreachable_target_is_a_clear_error() -> None:
    with pytest.raises(FedmodelError, match="target epsilon 0.01 cannot be reached"):
        calibrate_noise(
            target_epsilon=0.01,
            delta=1e-5,
            sample_rate=0.5,
            steps=1000,
            accountant="rdp",
        )
    with pytest.raises(FedmodelError, match="privacy.accountant"):
        calibrate_noise(
            target_epsilon=1.0, delta=1e-5, sample_rate=0.5, steps=10, accountant="x"
        )


def test_plan_privacy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The steps an epoch are counted once: the plan's steps and those its
    # step-limit check counts are one figure (they were two counts).
    counted: list[tuple[int, int]] = []

    def count(num_records: int, batch_size: int) -> int:
        counted.append((num_records, batch_size))
        return poisson_steps_per_epoch(num_records, batch_size)

    monkeypatch.setattr("fedmodel.privacy.client_plan.poisson_steps_per_epoch", count)
    plan = plan_privacy(
        target_epsilon=3.0,
        delta=None,
        num_records=500,
        batch_size=32,
        local_epochs=2,
        planned_rounds=5,
        accountant="rdp",
    )
    assert isinstance(plan, PrivacyPlan)
    assert plan.delta == pytest.approx(1 / 5000)
    assert plan.sample_rate == 1 / 16
    assert plan.steps_per_round == 2 * 16
    assert plan.steps_per_round * plan.planned_rounds == 5 * 32
    assert counted == [(500, 32)]
    spent = epsilon_for(
        [(plan.noise_multiplier, plan.sample_rate, plan.steps_per_round)] * 5,
        delta=plan.delta,
        accountant="rdp",
    )
    assert 2.95 <= spent <= 3.0


def _gaussian_epsilon(sigma: float, delta: float) -> float:
    """The exact epsilon of one Gaussian mechanism (Balle and Wang, 2018)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    def excess(eps: float) -> float:
        tail = norm.cdf(-eps * sigma + 1 / (2 * sigma))
        return tail - math.exp(eps) * norm.cdf(-eps * sigma - 1 / (2 * sigma)) - delta

    return float(brentq(excess, 1e-6, 100.0))


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize("target", [1.0, 8.0])
def test_a_site_smaller_than_a_batch_is_charged_at_least_the_exact_epsilon(
    accountant: str, target: float
) -> None:
    # 394 records, expected batch 512: every step takes all of them, so T
    # steps are exactly one Gaussian mechanism of noise sigma / sqrt(T), whose
    # epsilon is known in closed form. The charge may not fall below it.
    plan = plan_privacy(
        target_epsilon=target,
        delta=None,
        num_records=394,
        batch_size=512,
        local_epochs=6,
        planned_rounds=10,
        accountant=accountant,
    )
    steps = plan.steps_per_round * plan.planned_rounds
    assert (plan.sample_rate, steps) == (1.0, 60)
    charged = epsilon_for(
        [(plan.noise_multiplier, 1.0, steps)], delta=plan.delta, accountant=accountant
    )
    exact = _gaussian_epsilon(plan.noise_multiplier / math.sqrt(steps), plan.delta)
    assert exact <= charged <= target
    if accountant == "prv":  # PRV is tight; RDP's bound sits about 10% above
        assert charged - exact < 0.05 * target


def test_calibration_does_not_depend_on_the_thread_count() -> None:
    # `privacy-plan` runs on every core, a simulated client on one thread: the
    # plan shown must be the plan run to the last bit. (A multithreaded BLAS
    # once summed PRV's dot product in another order here: ...572 vs ...576.)
    script = (
        "from fedmodel.privacy.calibration import calibrate_noise\n"
        "print(repr(calibrate_noise(target_epsilon=4.0, delta=1 / 1800, "
        "sample_rate=1 / 6, steps=18, accountant='prv')))\n"
    )
    noise = set()
    for threads in ("1", "2"):
        env = {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
        }
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        noise.add(done.stdout.strip())
    assert len(noise) == 1, noise


def test_an_accountant_out_of_memory_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PRV's grid grows with the steps: `privacy-plan num_rounds=100000000`
    # grew to 18 GB in a minute, and under a memory limit ended in numpy's
    # _ArrayMemoryError traceback (exit 1, a "finding"), naming no key.
    class Exhausted:
        history: list[tuple[float, float, int]] = []

        def get_epsilon(self, **_: object) -> float:
            raise MemoryError("Unable to allocate 3.60 GiB")

    monkeypatch.setattr("fedmodel.privacy.accountants._PRVAccountant", Exhausted)
    with pytest.raises(FedmodelError) as refused:
        calibrate_noise(
            target_epsilon=7.77,
            delta=1e-5,
            sample_rate=0.2,
            steps=98_765,  # past PRV_MAX_STEPS it is refused before PRV runs
            accountant="prv",
        )
    message = str(refused.value)
    assert "98765 steps" in message and "out of memory" in message
    for key in ("num_rounds", "finetune.local_epochs", "privacy.accountant=rdp"):
        assert key in message


def test_a_prv_plan_past_the_step_limit_is_refused_before_prv_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `privacy-plan num_rounds=100000000` grew PRV's grid until the system
    # killed it (1.5 GB and seconds a calibration already at 1e5 steps).
    def no_accountant() -> None:
        raise AssertionError("the prv accountant ran")

    monkeypatch.setattr("fedmodel.privacy.accountants._PRVAccountant", no_accountant)
    # 500 records at batch 32: 16 steps an epoch.
    plan = {"target_epsilon": 3.0, "delta": None, "num_records": 500}
    plan |= {"batch_size": 32, "local_epochs": 2, "accountant": "prv"}
    rounds = PRV_MAX_STEPS // 32 + 1
    with pytest.raises(FedmodelError) as refused:
        plan_privacy(**plan, planned_rounds=rounds, client_id="3")
    message = str(refused.value)
    assert f"has {rounds * 32} steps (client 3: {rounds} rounds" in message
    assert "x 2 local epochs (finetune.local_epochs) x 16 steps an epoch" in message
    assert f"more than the {PRV_MAX_STEPS}" in message
    for way_out in ("num_rounds", "finetune.batch_size", "privacy.accountant=rdp"):
        assert way_out in message
    # A stored ledger's noise is no way around it: its epsilon is PRV's too.
    with pytest.raises(FedmodelError, match="more than the"):
        plan_privacy(**plan, planned_rounds=rounds, noise_multiplier=5.0)
    # Up to the limit, as before (here without the search).
    at_limit = plan_privacy(
        **plan, planned_rounds=PRV_MAX_STEPS // 32, noise_multiplier=5.0
    )
    assert at_limit.steps_per_round * at_limit.planned_rounds == PRV_MAX_STEPS


def test_rdp_plans_past_the_prv_step_limit() -> None:
    # The way out the refusal names: RDP's cost does not grow with the steps.
    plan = plan_privacy(
        target_epsilon=8.0,
        delta=None,
        num_records=500,
        batch_size=32,
        local_epochs=1,
        planned_rounds=6_250_000,
        accountant="rdp",
    )
    steps = plan.steps_per_round * plan.planned_rounds
    assert steps == 100_000_000
    spent = epsilon_for(
        [(plan.noise_multiplier, plan.sample_rate, steps)],
        delta=plan.delta,
        accountant="rdp",
    )
    assert 7.9 <= spent <= 8.0


def test_a_delta_too_small_for_prv_names_the_key_and_its_value() -> None:
    # Opacus said "Increase delta or reduce domain size", naming no key.
    with pytest.raises(FedmodelError) as refused:
        epsilon_for([(2.0, 0.5, 24)], delta=1e-30, accountant="prv")
    message = str(refused.value)
    assert "cannot evaluate delta 1e-30" in message
    assert "raise privacy.target_delta (now 1e-30;" in message
    assert "privacy.accountant=rdp" in message
    # The way out it names: RDP evaluates that delta.
    assert epsilon_for([(2.0, 0.5, 24)], delta=1e-30, accountant="rdp") > 0
