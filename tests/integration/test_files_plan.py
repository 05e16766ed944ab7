"""`fedmodel privacy-plan` against the run, for sites of very different sizes.

A files task deals each site its own file, so the record counts (and with them
each site's delta, sample rate, steps and noise) differ from site to site: one
site smaller than the budget rule's expected batch, one under it, one over it.
The plan printed first must be, figure for figure, what the run's settings,
every site's ledger, the summary and `fedmodel ledger show` then hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fedmodel.cli.main import run_command
from fedmodel.config import compose_config
from fedmodel.config.wording import decimals_up, three_digits_up
from fedmodel.federation.simulation import simulate
from fedmodel.privacy.sampling import sample_rate_for
from fedmodel.run.layout import simulated_client_dir
from tests.conftest import FEW_LATENCY_CALLS, ONE_ACTOR, client_ledger
from tests.integration.test_files_task import _site_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Under, just under and over the expected batch (512) the rule picks at
# epsilon 3: sample rates 1, 1 and 1/3.
SIZES = (40, 300, 1300)


def _overrides(tmp_path: Path) -> list[str]:
    files = []
    for site, records in enumerate(SIZES):
        files.append(tmp_path / f"site{site}.csv")
        _site_file(files[-1], records, first_label="cardiac" if site else "respiratory")
    _site_file(tmp_path / "test.csv", 20, first_label="cardiac")
    return [
        "model=tiny",
        ONE_ACTOR,
        "task=files",
        f"task.train_files=[{','.join(map(str, files))}]",
        f"task.test_file={tmp_path / 'test.csv'}",
        "privacy.target_epsilon=3",
        "num_rounds=2",
        "distill=off",
        *FEW_LATENCY_CALLS,
    ]


def test_printed_plan_is_what_sites_of_unequal_sizes_are_charged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = _overrides(tmp_path)
    assert run_command(["privacy-plan", "--json", *overrides]) == 0
    printed = json.loads(capsys.readouterr().out)
    run_dir = tmp_path / "run"
    summary = simulate(compose_config(overrides), run_dir=run_dir)

    # The settings the plan names are the ones the run resolved.
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    for key, shown in printed["training_settings"].items():
        group, _, name = key.rpartition(".")
        assert (resolved[group] if group else resolved)[name] == shown["value"], key
    assert printed["training_settings"]["finetune.batch_size"]["source"] == "budget"

    plans, rows = printed["clients"], summary["clients"]
    assert [plan["num_records"] for plan in plans] == list(SIZES)
    assert [row["num_train_examples"] for row in rows] == list(SIZES)
    assert [plan["sample_rate"] for plan in plans] == [
        sample_rate_for(n, resolved["finetune"]["batch_size"]) for n in SIZES
    ]
    assert plans[0]["sample_rate"] == 1.0 and plans[2]["sample_rate"] == 1 / 3
    for plan, row in zip(plans, rows, strict=True):
        assert plan["problem"] is None and plan["client"] == row["client_id"]
        ledger = client_ledger(run_dir, plan["client"])
        for key in ("noise_multiplier", "sample_rate", "delta"):
            assert plan[key] == ledger[key] == row[key], (plan["client"], key)
        assert ledger["target_epsilon"] == 3.0
        charged = ledger["rounds"]
        assert [charge["round"] for charge in charged] == [1, 2]
        assert [c["steps"] for c in charged] == [plan["steps_per_round"]] * 2
        assert row["steps"] == 2 * plan["steps_per_round"]
        shown = plan["epsilon_by_round"][ledger["accountant"]]
        assert shown == pytest.approx([c["epsilon"] for c in charged], rel=1e-9)
        assert row["epsilon"] == pytest.approx(charged[-1]["epsilon"], rel=1e-9)
        assert charged[-1]["epsilon"] <= 3.0
        state_dir = simulated_client_dir(run_dir, plan["client"])
        assert run_command(["ledger", "show", "--state-dir", str(state_dir)]) == 0
        said = capsys.readouterr().out
        # `ledger show` rounds the epsilon and the delta up: a stated bound
        # stays a bound.
        assert f"epsilon {decimals_up(charged[-1]['epsilon'], 4)} spent" in said
        assert f"at delta {three_digits_up(plan['delta'])} in 2 rounds" in said
