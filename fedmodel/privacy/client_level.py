"""Client-level DP math (`privacy=central`), Flower-free.

One round is one step of the Gaussian mechanism on the sum of a Poisson
sample's clipped client updates. `plan_client_level` calibrates the server's
noise for the run; the Flower wrapper that applies it lives in
`federation/adaptive_clipping.py`.
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.config import RunSettings
from fedmodel.config.wording import decimals_up, plural
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import check_prv_steps
from fedmodel.privacy.calibration import calibrate_noise
from fedmodel.privacy.client_plan import PrivacyPlan, choose_delta
from fedmodel.privacy.figure_keys import EPSILON_KEY, STEPS_KEY
from fedmodel.privacy.ledger_holding import ledger_shortfall
from fedmodel.privacy.ledger_record import CENTRAL_LEDGER_FILE, read_record

CLIENT_LEVEL_ID = "all-clients"
# Strategies whose aggregate is a plain (re-weightable) FedAvg mean; a server
# optimiser (FedAdam) or a robust rule would change the sensitivity.
CENTRAL_DP_STRATEGIES = ("fedavg", "fedprox")


def plan_client_level(settings: RunSettings) -> PrivacyPlan:
    """Calibrate the server's noise multiplier for the whole run.

    One round is one step of the Gaussian mechanism on the sum of the
    clipped updates of a Poisson sample of the clients, at the sample rate q =
    `strategy.fraction_train` (1: every client, no amplification claimed).
    Delta is per client (null: 1 / (10 * num_clients)). The count noise is
    checked against the noise found (`clipped_count_stddev`), as the server's
    wrapper checks it, so `fedmodel privacy-plan` and the start-up check refuse
    what the server would.
    """
    privacy = settings.privacy
    if settings.strategy.name not in CENTRAL_DP_STRATEGIES:
        # Named as the user picks a strategy: a config group, not its label key.
        choices = " or ".join(f"strategy={name}" for name in CENTRAL_DP_STRATEGIES)
        raise FedmodelError(
            f"privacy=central needs {choices}, got strategy="
            f"{settings.strategy.name}: its noise is calibrated for a plain sum "
            "of clipped updates; choose one of those, or privacy=dpsgd"
        )
    assert privacy.target_epsilon is not None
    num_clients = settings.num_clients
    delta = choose_delta(
        num_clients,
        privacy.target_delta,
        client_id=f"(client-level DP over {num_clients} clients)",
    )
    sample_rate = settings.strategy.fraction_train
    check_prv_steps(
        privacy.accountant,
        settings.num_rounds,
        counted="client-level DP: one step a round, num_rounds",
        fewer="Lower num_rounds",
    )
    sigma = calibrate_noise(
        target_epsilon=privacy.target_epsilon,
        delta=delta,
        sample_rate=sample_rate,
        steps=settings.num_rounds,
        accountant=privacy.accountant,
    )
    clipped_count_stddev(settings, sigma, expected_clients=sample_rate * num_clients)
    return PrivacyPlan(
        target_epsilon=privacy.target_epsilon,
        delta=delta,
        sample_rate=sample_rate,
        steps_per_round=1,
        planned_rounds=settings.num_rounds,
        noise_multiplier=sigma,
        accountant=privacy.accountant,
    )


def check_central_ledger_kept(
    run_dir: Path, recorded: dict[int, dict[str, float]]
) -> None:
    """Refuse a resume whose client-level ledger holds less than was recorded.

    Under `privacy=central` the server's one ledger is the run's budget, and
    every client's figures in the checkpoint are that ledger's
    (`federation/central_dp.py`). Deleted, or replaced by an older copy, it
    would open empty or short and the server would spend the budget again;
    the rule is the clients' (`ledger_regression`). Without a readable
    checkpoint there is nothing to compare with.
    """
    if not recorded:
        return
    figures = max(recorded.values(), key=lambda f: f.get(STEPS_KEY, 0.0))
    path = run_dir / CENTRAL_LEDGER_FILE
    record = read_record(path) if path.is_file() else None
    holds = ledger_shortfall(figures, record, run_dir, count=_rounds)
    if holds is None:
        return
    raise FedmodelError(
        f"resume=true in {run_dir}: the client-level privacy ledger {path} "
        f"{holds}, but the run's checkpoint recorded "
        f"{_rounds(int(figures.get(STEPS_KEY, 0)))} (epsilon "
        f"{decimals_up(figures.get(EPSILON_KEY, 0.0), 4)}) charged to it: "
        "resumed, the server would noise and release further rounds from a "
        "ledger that does not count what it already released. Restore the "
        "ledger, or start a new run in a folder of its own"
    )


def _rounds(steps: int) -> str:
    # A client-level ledger charges one step per round.
    return f"{steps} {plural(steps, 'round')}"


def clipped_count_stddev(
    settings: RunSettings, noise_multiplier: float, *, expected_clients: float
) -> float:
    """The noise on the clipped-update count (Andrew et al.'s sigma_b).

    `expected_clients` is q N, the clients a round samples on average.
    Flower needs noise_multiplier < 2 sigma_b; its default (q N / 20) is too
    small for small federations, so null means max(q N / 20, z).
    """
    chosen = settings.privacy.clipped_count_stddev
    if chosen is not None:
        if not chosen > noise_multiplier / 2:
            raise FedmodelError(
                f"privacy.clipped_count_stddev={chosen} must exceed half the noise "
                f"multiplier ({noise_multiplier:.4g} / 2); set it higher or null"
            )
        return chosen
    return max(expected_clients / 20, noise_multiplier)
