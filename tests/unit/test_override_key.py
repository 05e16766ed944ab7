"""Overrides read by Hydra's own parser: the key each names, and a resume's argv."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fedmodel.cli.hydra_files import (
    OverrideKey,
    continue_argv,
    override_key,
    task_overrides,
)
from fedmodel.config import CONF_DIR


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("num_rounds=3", OverrideKey("num_rounds", "", hydras=False)),
        ("+foo=1", OverrideKey("foo", "+", hydras=False)),
        ("++foo=1", OverrideKey("foo", "++", hydras=False)),
        ("~distill", OverrideKey("distill", "~", hydras=False)),
        ("~num_rounds=3", OverrideKey("num_rounds", "~", hydras=False)),
        ("model@student=tiny", OverrideKey("model@student", "", hydras=False)),
        # A quoted value may hold what reads as a key's end or a prefix.
        ("hydra.run.dir='+a=b,~c'", OverrideKey("hydra.run.dir", "", hydras=True)),
        ("++hydra.job.env_set.X=1", OverrideKey("hydra.job.env_set.X", "++", True)),
        ("hydra/launcher=basic", OverrideKey("hydra/launcher", "", hydras=True)),
        ("hydrant=1", OverrideKey("hydrant", "", hydras=False)),
    ],
)
def test_the_key_is_read_as_hydra_reads_it(override: str, key: OverrideKey) -> None:
    assert override_key(override) == key


def test_an_override_hydra_cannot_parse_has_no_key() -> None:
    assert override_key("num_rounds=[") is None


def test_task_overrides_leave_out_hydras_own_and_keep_what_it_cannot_parse() -> None:
    # Hydra names an override it cannot parse; it is left for Hydra to name.
    overrides = ["seed=1", "~hydra.job.name", "+hydra/launcher=basic", "hydra.x=["]
    assert task_overrides(overrides) == ["seed=1", "hydra.x=["]


ENV_SET = "hydra.job.env_set.FOO"


@pytest.mark.parametrize(
    ("stored", "extra", "given", "composed"),
    [
        # Not in the packaged config: the start added it, so must the resume.
        ("+foo=1", "foo=2", "+", 2),
        (f"+{ENV_SET}=1", f"{ENV_SET}=2", "+", "2"),
        (f"++{ENV_SET}=1", f"{ENV_SET}=2", "++", "2"),
        # An extra that says how itself is taken as written.
        (f"+{ENV_SET}=1", f"++{ENV_SET}=2", "", "2"),
        # A force-add sets a key whether the config has it or not.
        ("++num_rounds=3", "num_rounds=4", "++", 4),
        # A key the start set plainly is set plainly, as before.
        ("num_rounds=3", "num_rounds=4", "", 4),
    ],
)
def test_an_extra_replacing_an_added_key_adds_it_too(
    tmp_path: Path, stored: str, extra: str, given: str, composed: object
) -> None:
    argv = continue_argv(["model=tiny", stored], tmp_path, extra=[extra])
    assert argv == [
        "model=tiny",
        "resume=true",
        f"hydra.run.dir={tmp_path}",
        given + extra,
    ]
    # Hydra composes it: a plain `key=` for a key not in the config it refuses.
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        config = compose("config", overrides=argv, return_hydra_config=True)
    key = extra.removeprefix("++").partition("=")[0]
    assert OmegaConf.select(config, key) == composed


def test_a_replaced_added_group_option_is_added_again(tmp_path: Path) -> None:
    # A config group outside the defaults list is added with `+group=option`;
    # Hydra takes no force-add of a group, nor a plain one it never had.
    argv = continue_argv(["+a/b=c"], tmp_path, extra=["a/b=d"])
    assert argv[-1] == "+a/b=d"


@pytest.mark.parametrize(
    ("stored", "extra"), [(f"+{ENV_SET}=1", f"~{ENV_SET}"), ("+a/b=c", "~a/b")]
)
def test_an_extra_delete_of_an_added_key_is_the_add_dropped(
    tmp_path: Path, stored: str, extra: str
) -> None:
    # Before, `~key` was passed on after the add was dropped, and Hydra
    # refused to delete a key the config did not have ("does not exist").
    argv = continue_argv(["model=tiny", stored], tmp_path, extra=[extra])
    assert argv == ["model=tiny", "resume=true", f"hydra.run.dir={tmp_path}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        config = compose("config", overrides=argv, return_hydra_config=True)
    assert "FOO" not in config.hydra.job.env_set


def test_an_extra_delete_of_a_force_added_key_is_passed_on(tmp_path: Path) -> None:
    # `++key=` may have set a key the packaged config has: that one is
    # deleted by Hydra, as written, and not by dropping the stored override.
    argv = continue_argv(["++num_rounds=3"], tmp_path, extra=["~num_rounds"])
    assert argv[-1] == "~num_rounds"


def test_a_key_stored_twice_is_replayed_once_with_its_last_value(
    tmp_path: Path,
) -> None:
    # A start made before a repeated key was refused may have stored both;
    # Hydra ran it with the last, and the resume's check refuses a repeat.
    stored = ["model=tiny", "+foo=1", "num_rounds=3", "foo=2", "num_rounds=4"]
    argv = continue_argv(stored, tmp_path)
    assert argv == [
        "model=tiny",
        "+foo=2",
        "num_rounds=4",
        "resume=true",
        f"hydra.run.dir={tmp_path}",
    ]


@pytest.mark.parametrize("extra", ["resume=true", "hydra.run.dir=run"])
def test_an_extra_that_sets_the_resumes_own_key_replaces_it(
    tmp_path: Path, extra: str
) -> None:
    # Before, the resume's own value stayed beside the user's: two of one key.
    argv = continue_argv(["model=tiny"], tmp_path, extra=[extra])
    key = extra.partition("=")[0]
    assert [o for o in argv if o.startswith(f"{key}=")] == [extra]
    assert argv[-1] == extra
