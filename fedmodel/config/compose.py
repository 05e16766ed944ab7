"""Compose the packaged Hydra config from code, refusing overrides no run can take.

Composed outside `fedmodel simulate`'s Hydra app (privacy-plan, a ServerApp
under `flwr run`, the tests) and inside it (the check of unread keys). The
groups and options listed here are those `--help` shows. A group's files whose
names start with "_" (`model/_base.yaml`) hold the keys its options share and
are pulled in by their defaults lists; they are not options, so `--help`, the
"did you mean" and the check of a `group=option` override leave them out.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmodel.config.override_words import refuse_spaced_overrides
from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Override

# The YAML ships inside the package, so a wheel install composes the same config.
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
SHARED_PREFIX = "_"
# Hydra's own groups (the help text, logging), not a run's settings.
HYDRA_GROUP = "hydra"
# The run folder's key: each command sets it to the folder it runs in.
RUN_FOLDER_KEY = "run_dir"
# The key of each group that names its chosen option (`finetune=lora`). Only
# choosing the option brings its keys, so an override of this key is refused.
OPTION_KEYS = {
    "task": "task.name",
    "model": "model.name",
    "finetune": "finetune.mode",
    "partition": "partition.name",
    "privacy": "privacy.mode",
    "strategy": "strategy.name",
    "distill": "distill.name",
    "federation": "federation.name",
    "tracking": "tracking.name",
}


def compose_config(overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose conf/ with Hydra overrides, outside of a Hydra app.

    The packaged YAML does not change while a process runs, so one list of
    overrides always composes the same config: each is composed once per
    process (a tenth of a second or more; a sweep's checks and the tests
    compose the same lists many times), and every caller gets its own copy.
    """
    return copy.deepcopy(_composed(tuple(overrides or ())))


@functools.lru_cache(maxsize=256)
def _composed(overrides: tuple[str, ...]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    check_overrides(overrides)
    try:
        if GlobalHydra.instance().is_initialized():
            # Inside `fedmodel simulate`'s Hydra app, which composes from
            # CONF_DIR too: Hydra refuses a second initialisation there.
            cfg = compose(config_name="config", overrides=list(overrides))
        else:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose(config_name="config", overrides=list(overrides))
    except HydraException as exc:
        raise FedmodelError(f"bad config override in {list(overrides)}: {exc}") from exc
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items() if k != "hydra"}


@functools.cache
def override_parser() -> OverridesParser:
    """Hydra's parser of command-line overrides, built once per process."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def is_option(name: str) -> bool:
    """Whether a group's file `name` (no .yaml) is an option, not shared keys."""
    return not name.startswith(SHARED_PREFIX)


def config_groups() -> list[str]:
    """The config groups a run is composed of (conf/'s folders but Hydra's)."""
    return sorted(
        p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != HYDRA_GROUP
    )


def group_options(group: str) -> list[str]:
    """The options of config group `group` a user may pick, sorted."""
    names = (path.stem for path in (CONF_DIR / group).glob("*.yaml"))
    return sorted(name for name in names if is_option(name))


def config_groups_text() -> str:
    """One `group: option, ...` line per group, for `fedmodel simulate --help`."""
    lines = (f"{group}: {', '.join(group_options(group))}" for group in config_groups())
    return "\n".join(lines)


def check_overrides(overrides: Iterable[str]) -> None:
    """Refuse overrides Hydra would take but a run cannot, before composing.

    Each is parsed once; overrides Hydra cannot parse are left to Hydra,
    which names them, but for one with a space for its `=`, named here with
    how to write it.
    """
    overrides = list(overrides)
    refuse_spaced_overrides(overrides)
    parsed = parsed_overrides(overrides)
    _refuse_shared_options(parsed)
    _refuse_option_keys(parsed)
    _refuse_deletions(parsed)


def refuse_run_folder_key(overrides: Iterable[str], *, instead: str) -> None:
    """Refuse `run_dir` among a command's overrides; `instead` names what sets it.

    The command replaces that key with the folder it runs in, so a value given
    there would be dropped without a word (before: a "resume" in a new folder).
    """
    for text, override in parsed_overrides(overrides):
        if override.key_or_group == RUN_FOLDER_KEY:
            raise FedmodelError(
                f"{text}: {RUN_FOLDER_KEY} is set by the command to the folder it "
                f"runs in, not by an override; {instead}"
            )


def _refuse_shared_options(parsed: list[tuple[str, Override]]) -> None:
    """Refuse an override that picks a group's shared keys (`model=_base`).

    Composing with it would stop later on a missing key that does not say why.
    """
    groups = set(config_groups())
    for _, override in parsed:
        group = override.key_or_group
        if group not in groups or override.is_delete():
            continue
        for name in named_options(override):
            # A name that is no file at all is Hydra's to report.
            if not is_option(name) and (CONF_DIR / group / f"{name}.yaml").is_file():
                raise FedmodelError(
                    f"no option '{name}' in config group '{group}' ({group}/{name}"
                    ".yaml holds the keys its options share); options: "
                    f"{', '.join(group_options(group))}"
                )


def _refuse_option_keys(parsed: list[tuple[str, Override]]) -> None:
    """Refuse setting the key that names a group's option (`strategy.name`).

    It renamed the option but kept the keys of the one chosen:
    `strategy.name=fedprox` ran FedProx with strategy=fedavg's proximal_mu
    of 0, `model.name=tiny` trained MiniLM under the name tiny.
    """
    options_key = {key: group for group, key in OPTION_KEYS.items()}
    for text, override in parsed:
        group = options_key.get(override.key_or_group)
        if group is None or override.is_delete():
            continue
        said = (
            f"{text}: {override.key_or_group} names the option the {group} keys "
            "came from, and setting it brings none of that option's keys"
        )
        named, options = named_options(override), group_options(group)
        if named and set(named) <= set(options):
            raise FedmodelError(
                f"{said}; write {group}={text.split('=', 1)[1]} instead"
            )
        raise FedmodelError(
            f"{said}; choose the {group} with {group}=OPTION (options: "
            f"{', '.join(options)})"
        )


def _refuse_deletions(parsed: list[tuple[str, Override]]) -> None:
    """Refuse a `~` override of a run's group or key: a run reads every key.

    Hydra would delete a set key (`~num_rounds`) and the run would stop later
    on a missing key. Hydra's own keys (`~hydra...`), and a key the config
    does not hold (which Hydra names, with a guess), are left to Hydra.
    """
    deleted = [override for _, override in parsed if override.is_delete()]
    if not deleted:
        return
    groups = set(config_groups())
    kept = [text for text, override in parsed if not override.is_delete()]
    for override in deleted:
        name = override.key_or_group
        if name.split(".")[0].split("/")[0] == HYDRA_GROUP:
            continue
        if name in groups:
            raise FedmodelError(
                f"cannot delete config group '{name}' (~{name}): a run takes one "
                f"option of each group; pick one with {name}=OPTION (options: "
                f"{', '.join(group_options(name))})"
            )
        if _holds_key(kept, name):
            raise FedmodelError(
                f"cannot delete config key '{name}' (~{name}): a run reads every "
                f"key of fedmodel's config, so keys are set, not deleted; write "
                f"{name}=VALUE (`fedmodel simulate --cfg job` prints every key "
                "and its default)"
            )


def parsed_overrides(overrides: Iterable[str]) -> list[tuple[str, Override]]:
    """Each override with Hydra's reading of it; none if Hydra cannot parse one."""
    from hydra.errors import HydraException

    texts = list(overrides)
    try:
        return list(zip(texts, override_parser().parse_overrides(texts), strict=True))
    except HydraException:
        return []


def _holds_key(overrides: list[str], key: str) -> bool:
    """Whether the config composed with `overrides` holds dotted `key`.

    False where those overrides do not compose: the error that names them
    comes first.
    """
    try:
        node: Any = _composed(tuple(overrides))  # read only: no copy needed
    except FedmodelError:
        return False
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def named_options(override: Override) -> list[str]:
    """The options an override names: one, or a choice sweep's.

    Not a glob's (the user named no option) nor a range's or an interval's
    (no option is a number: Hydra reports them).
    """
    from hydra.core.override_parser.types import Glob

    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if override.is_choice_sweep() and not isinstance(override.value(), Glob):
        return list(override.sweep_string_iterator())
    return []
