"""Keys set for an option that does not read them: refused, or warned of."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest
from hydra import initialize_config_dir

from fedmodel.config import CONF_DIR, RunSettings, compose_config, settings_from_dict
from fedmodel.config.compose import group_options
from fedmodel.config.unread_keys import PRESET_GROUPS, unread_key_warnings
from fedmodel.config.unread_rules import UNREAD_RULES
from fedmodel.errors import FedmodelError
from fedmodel.federation import server_app


def _settings(*overrides: str) -> RunSettings:
    return settings_from_dict(compose_config(list(overrides)))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            ["strategy.proximal_mu=0.1"],
            "strategy.proximal_mu=0.1 is set, but strategy=fedavg does not read "
            "it (only strategy=fedprox",
        ),
        (["strategy=fedprox", "strategy.eta=0.1"], "only strategy=fedadam"),
        (["strategy.trim_beta=0.1"], "strategy.trim_beta=0.1 is set"),
        (["strategy=fedadam", "strategy.robust_method=trimmed_mean"], "robust"),
        (
            ["model.num_layers=4"],
            "model.num_layers=4 is set, but model.path=shipped:",
        ),
        (
            ["task=bank", "task.test_fraction=0.3"],
            "task.test_fraction=0.3 is set, but task=bank",
        ),
    ],
)
def test_keys_no_chosen_option_reads_are_refused(
    overrides: list[str], fragment: str
) -> None:
    # Before, each passed privacy-plan and simulate with exit 0 and changed
    # nothing: a FedAvg run with "mu 0.1" was plain FedAvg.
    with pytest.raises(FedmodelError, match=re.escape(fragment)):
        _settings(*overrides)


def test_the_same_keys_pass_under_the_option_that_reads_them() -> None:
    for overrides in (
        ["strategy=fedprox", "strategy.proximal_mu=0.1"],
        ["strategy=fedadam", "strategy.eta=0.1"],
        [
            "strategy=robust",
            "strategy.robust_method=trimmed_mean",
            "strategy.trim_beta=0.1",
        ],
        ["finetune=full", "finetune.optimizer=sgd", "finetune.momentum=0.5"],
        ["warm_start.epochs=5"],
        ["model=tiny", "model.num_layers=4"],
        ["tracking=mlflow", "tracking.uri=http://x:5000"],
        ["task=hospital", "task.test_fraction=0.3"],
        # The packaged values, where no option reads them.
        ["strategy=fedavg", "strategy.proximal_mu=0.0"],
    ):
        settings = _settings(*overrides)
        assert unread_key_warnings(settings, overrides=overrides) == []
        assert settings_from_dict(dataclasses.asdict(settings)) == settings


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            ["partition=iid", "partition.alpha=0.1"],
            "partition.alpha=0.1 is set, but partition=iid does not read it",
        ),
        (["partition.column=region"], "only partition=natural"),
        (
            ["finetune=head", "finetune.lora_targets=[querry]"],
            "finetune.lora_targets=['querry'] is set, but finetune=head",
        ),
        (["privacy=off", "privacy.target_delta=1e-5"], "privacy=off does not"),
        (["privacy.initial_clipping_norm=1"], "only privacy=central"),
        (["distill=off", "distill.student.num_layers=3"], "distill=off"),
        (["federation=deployment", "federation.gpus_per_client=1"], "simulation"),
        # `fedmodel resume RUN tracking=none` keeps the run's tracking.uri.
        (["tracking.uri=http://x:5000"], "only tracking=mlflow"),
        # Left unread by another key's value rather than by an option.
        (
            ["finetune=lora", "finetune.momentum=0.5"],
            "finetune.momentum=0.5 is set, but finetune.optimizer=adam does not "
            "read it (only finetune.optimizer=sgd",
        ),
        (
            ["strategy=robust", "strategy.trim_beta=0.1"],
            "strategy.robust_method=median does not read it",
        ),
        (
            ["warm_start.enabled=false", "warm_start.epochs=5"],
            "warm_start.epochs=5 is set, but warm_start.enabled=false does not "
            "read it (only warm_start.enabled=true",
        ),
    ],
)
def test_keys_a_sweep_sets_for_every_job_are_warned_of(
    overrides: list[str], fragment: str
) -> None:
    # A sweep's extra overrides reach jobs of several options
    # (simulations/privacy_sweep.sh), so these are said, not refused.
    warnings = unread_key_warnings(_settings(*overrides), overrides=overrides)
    assert len(warnings) == 1
    assert fragment in warnings[0]
    assert "so it changes nothing in this run: choose" in warnings[0]


def test_the_ready_made_sweeps_extra_overrides_pass_every_job() -> None:
    # privacy_sweep.sh hands "$@" to its centralized (partition=iid) and
    # privacy=off jobs as well as to its federated DP-SGD ones.
    extra = ["partition.alpha=0.1", "privacy.target_delta=1e-5"]
    for job in (
        ["privacy=dpsgd"],
        ["privacy=off"],
        ["privacy=central"],
        ["experiment=centralized", "privacy=dpsgd"],
        ["experiment=centralized", "privacy=off"],
    ):
        _settings("task=hospital", "distill=off", *job, *extra)


def test_the_default_config_warns_of_nothing() -> None:
    assert unread_key_warnings(_settings(), overrides=[]) == []


@pytest.mark.parametrize(
    "overrides",
    [
        # debug=smoke sets warm_start.epochs: 2, and was said to be the user's.
        ["debug=smoke", "warm_start.enabled=false"],
        # The experiment's privacy.target_epsilon, in its non-private twin.
        ["experiment=banks_eps8", "privacy=off"],
        ["debug=smoke", "experiment=hospitals_eps3", "privacy=off"],
    ],
)
def test_a_presets_own_values_are_not_the_users(overrides: list[str]) -> None:
    assert unread_key_warnings(_settings(*overrides), overrides=overrides) == []


def test_a_key_the_user_sets_under_a_preset_is_still_named() -> None:
    warned = ["debug=smoke", "warm_start.enabled=false", "warm_start.epochs=3"]
    warnings = unread_key_warnings(_settings(*warned), overrides=warned)
    assert len(warnings) == 1
    assert "warm_start.epochs=3 is set, but warm_start.enabled=false" in warnings[0]
    with pytest.raises(FedmodelError, match=r"strategy\.proximal_mu=0\.1 is set"):
        _settings("debug=smoke", "strategy.proximal_mu=0.1")


@pytest.mark.parametrize(
    "preset",
    [f"{group}={option}" for group in PRESET_GROUPS for option in group_options(group)],
)
def test_no_preset_sets_a_key_that_is_refused(preset: str) -> None:
    # The refusals, on every party, know no preset: one that set a refused
    # rule's key would be refused as if the user had set it. (Its warnings
    # cannot name its own values: they count as packaged.)
    _settings(preset)  # raises FedmodelError naming such a key


def test_every_rule_names_keys_and_readers_that_exist() -> None:
    settings = _settings()
    for rule in UNREAD_RULES:
        for key in (*rule.keys, rule.choice):
            parent, _, name = key.rpartition(".")
            holder = settings
            for part in parent.split("."):
                holder = getattr(holder, part)
            assert hasattr(holder, name), key


def test_the_check_composes_inside_the_hydra_app_of_simulate() -> None:
    # Which values an option ships is composed while `fedmodel simulate`'s
    # Hydra app runs; a second Hydra initialisation there is refused
    # ("GlobalHydra is already initialized"). Overrides no test composes, so
    # no cached composition hides it.
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose_config(["seed=918273", "partition=iid"])
    assert config["seed"] == 918273


@pytest.mark.parametrize(("flwr_run", "said"), [(True, 1), (False, 0)])
def test_a_server_flwr_run_started_warns_once_as_simulate_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, flwr_run: bool, said: int
) -> None:
    # A deployment's server built its settings and never said that a key it
    # was given changes nothing; `fedmodel simulate` says it before Flower
    # starts, so its own server (flwr_run False) must not say it again. The
    # preset's warm_start.epochs is not the user's (before, it was named too).
    overrides = [
        "federation=deployment",
        "strategy=robust",
        "strategy.trim_beta=0.1",
        "debug=smoke",
        "warm_start.enabled=false",
    ]
    settings = _settings(*overrides, f"run_dir={tmp_path}")
    with caplog.at_level(logging.WARNING, logger=server_app.__name__):
        server_app.check_start(
            settings, flwr_run_overrides=overrides if flwr_run else None
        )
    warned = [m for m in caplog.messages if " is set, but " in m]
    assert len(warned) == said
    assert all(m.startswith("strategy.trim_beta=0.1 is set") for m in warned)
