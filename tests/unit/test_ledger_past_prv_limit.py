"""A site's ledger past PRV's step limit states RDP's epsilon, and says so.

A site's ledger composes every federation's steps, which no plan check
bounds; PRV's memory and time grow with them. The tests that charge a ledger
lower PRV_MAX_STEPS so that a few steps cross it: the ledger, the accountant
call and `fedmodel ledger show` are the real ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest

import fedmodel.privacy.accountants as accountants
from fedmodel.cli.main import run_command
from fedmodel.client.private_round import PrivateRound
from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import (
    PRV_MAX_STEPS,
    composed_epsilon,
    evaluated_epsilon,
    rdp_epsilon,
)
from fedmodel.privacy.calibration import calibrate_noise, epsilon_for
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.ledger import PrivacyLedger
from tests.conftest import small_settings

PLAN = PrivacyPlan(
    target_epsilon=50.0,
    delta=1e-4,
    sample_rate=0.1,
    steps_per_round=10,
    planned_rounds=1,
    noise_multiplier=1.0,
    accountant="prv",
)
RDP_WORDS = "RDP's bound, a looser one: its"


@pytest.fixture
def fresh_epsilons() -> Iterator[None]:
    # Epsilons are remembered per history, not per limit: a lowered limit
    # must not meet figures computed under the real one, nor leave its own.
    composed_epsilon.cache_clear()
    yield
    composed_epsilon.cache_clear()


def lower_the_limit(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    composed_epsilon.cache_clear()
    monkeypatch.setattr(accountants, "PRV_MAX_STEPS", steps)


def open_ledger(path: Path) -> PrivacyLedger:
    return PrivacyLedger.open(
        path, client_id="3", plan=PLAN, data_fingerprint="sha256:abc"
    )


def test_prv_states_rdps_epsilon_past_its_step_limit() -> None:
    # Two sample rates, as a site whose file grew between federations: the
    # merged history is past the limit, though neither entry is. Before, PRV
    # was asked for it (seconds and about a GB at this size, more with more
    # entries).
    past = [(1.0, 0.01, 60_000), (1.0, 0.02, PRV_MAX_STEPS - 60_000 + 1)]
    stated = epsilon_for(past, delta=1e-5, accountant="prv")
    assert stated == rdp_epsilon(tuple(past), 1e-5)
    # Under the limit PRV's figure is unchanged, and tighter than RDP's.
    under = ((1.0, 0.01, 100),)
    prv = epsilon_for(under, delta=1e-5, accountant="prv")
    assert prv == evaluated_epsilon(under, 1e-5, "prv") < rdp_epsilon(under, 1e-5)
    # A PRV calibration is not let meet RDP's figures there: every plan is
    # refused past the limit first, and so is a search asked directly.
    with pytest.raises(ValueError, match=f"at most {PRV_MAX_STEPS} steps"):
        calibrate_noise(
            target_epsilon=50.0,
            delta=1e-5,
            sample_rate=0.01,
            steps=PRV_MAX_STEPS + 1,
            accountant="prv",
        )


def test_a_site_round_past_the_limit_charges_rdps_epsilon_and_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    fresh_epsilons: None,
) -> None:
    split = datasets.Dataset.from_dict(
        {"text": [f"record {i}" for i in range(40)], "label": [0] * 40}
    )
    caplog.set_level(logging.INFO, logger="fedmodel.client.private_round")

    opened_with: list[float] = []  # each round's spend as it opened the ledger

    def site_round(number: int, *, target: int) -> PrivateRound:
        settings = small_settings("num_rounds=1", f"privacy.target_epsilon={target}")
        opened = PrivateRound.open(
            settings, client_id=3, state_dir=tmp_path, split=split, at_site=True
        )
        opened_with.append(opened.ledger.epsilon)
        assert opened.ledger.accountant == "prv" and opened.charge(number)
        return opened

    # The first federation's target sets the noise the ledger keeps.
    first = site_round(1, target=8)
    steps = first.planned_steps
    assert first.epsilon == evaluated_epsilon(
        ((first.ledger.noise_multiplier, first.ledger.sample_rate, steps),),
        first.ledger.delta,
        "prv",
    )
    # A later federation, with a higher target, takes it past the limit.
    lower_the_limit(monkeypatch, steps)
    second = site_round(1, target=50)
    history = ((second.ledger.noise_multiplier, second.ledger.sample_rate, 2 * steps),)
    assert second.epsilon == rdp_epsilon(history, second.ledger.delta) > first.epsilon
    said = [r.message for r in caplog.records if RDP_WORDS in r.message]
    assert said == [
        f"client 3: epsilon {decimals_up(second.epsilon, 4)} ({RDP_WORDS} "
        f"{2 * steps} steps are past the {steps} the prv privacy accountant "
        "evaluates)"
    ]
    # The figure depends on the history alone: the next round opens it.
    site_round(2, target=50)
    assert opened_with[-1] == second.epsilon
    assert run_command(["ledger", "show", "--state-dir", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert f"({RDP_WORDS} {3 * steps} steps are past the {steps} the prv" in shown


def test_a_ledger_charged_with_prvs_epsilon_past_the_limit_still_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_epsilons: None
) -> None:
    # A fedmodel before this limit stored PRV's epsilon for any history: its
    # site's ledger is not refused as edited, and spends RDP's from now on.
    path = tmp_path / "privacy_ledger.json"
    ledger = open_ledger(path)
    ledger.charge(round_number=1, steps=10)
    prv = ledger.charge(round_number=2, steps=10)
    lower_the_limit(monkeypatch, 15)
    reopened = open_ledger(path)
    assert reopened.epsilon == rdp_epsilon(((1.0, 0.1, 20),), 1e-4) > prv
    assert reopened.charge(round_number=3, steps=10) == reopened.rounds[-1].epsilon
    # A history edited to spend less is still refused.
    edited = path.read_text().replace("[\n      1.0,", "[\n      2.0,", 1)
    assert edited != path.read_text()
    path.write_text(edited)
    with pytest.raises(FedmodelError, match="the file was edited since"):
        open_ledger(path)


def test_an_edited_ledger_past_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_epsilons: None
) -> None:
    # Its last charge stored neither RDP's figure nor PRV's: PRV is asked once
    # (the check of an older ledger) and the file refused, naming the
    # accountant whose figure the history now spends.
    path = tmp_path / "privacy_ledger.json"
    open_ledger(path).charge(round_number=1, steps=20)
    lower_the_limit(monkeypatch, 15)
    path.write_text(path.read_text().replace("[\n      1.0,", "[\n      1.5,", 1))
    with pytest.raises(FedmodelError, match=r"\(delta 0.0001, rdp\): the file"):
        open_ledger(path)
