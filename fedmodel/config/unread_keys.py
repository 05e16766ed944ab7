"""Keys set for an option that does not read them: refused, or warned of.

Each rule names keys that only some options read (`UNREAD_RULES`). A key
counts as set where its value differs from the one the chosen option's
packaged YAML gives it (a key the budget rule filled, listed in
`budget_rule_keys`, is not the user's). Accepted in silence, each would have
had no effect, and the run would not have said so: LoRA with its embeddings
still frozen, privacy=central with no example clipped, a sweep over
`partition.alpha` under partition=iid running the same split in every job.

A rule is a warning, not a refusal, where a sweep legitimately sets its keys
for jobs of several options: `simulations/privacy_sweep.sh` passes its extra
overrides to its privacy=dpsgd, central and off jobs and to the centralized
(partition=iid) ones, docs/privacy-research.md's sweep runs finetune=head and
lora side by side, and the tests' small runs shrink the student under
distill=off too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from fedmodel.config.compose import CONF_DIR, compose_config
from fedmodel.config.flat_keys import dotted
from fedmodel.config.modes import EMBEDDING_MODE_NAMES, TINY_RANDOM
from fedmodel.config.schema import RunSettings
from fedmodel.errors import FedmodelError

# The key of each group that names its chosen option (`finetune=lora`).
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


@dataclass(frozen=True)
class UnreadRule:
    """`keys`, read only where the key `choice` is one of `readers`."""

    keys: tuple[str, ...]
    choice: str
    readers: tuple[str, ...]
    # What the readers do with the keys, after "only finetune=full".
    does: str
    # False: a warning, for keys a sweep sets for every one of its jobs.
    refused: bool


UNREAD_RULES = (
    UnreadRule(
        ("finetune.train_embeddings",),
        "finetune.mode",
        EMBEDDING_MODE_NAMES,
        "trains the embeddings",
        refused=True,
    ),
    UnreadRule(
        ("privacy.grad_sample_mode", "privacy.max_grad_norm"),
        "privacy.mode",
        ("dpsgd",),
        "clips each example's gradient; privacy=central clips each client's "
        "whole update on the server, by privacy.initial_clipping_norm",
        refused=True,
    ),
    UnreadRule(
        ("distill.rounds",),
        "distill.name",
        ("federated",),
        "runs student rounds on the clients",
        refused=True,
    ),
    UnreadRule(
        ("distill.transfer_file",),
        "distill.name",
        ("server", "federated"),
        "distil a student",
        refused=True,
    ),
    UnreadRule(
        ("strategy.proximal_mu",),
        "strategy.name",
        ("fedprox",),
        "adds the proximal term",
        refused=True,
    ),
    UnreadRule(
        tuple(f"strategy.{key}" for key in ("eta", "eta_l", "beta_1", "beta_2", "tau")),
        "strategy.name",
        ("fedadam",),
        "runs the server optimiser",
        refused=True,
    ),
    UnreadRule(
        ("strategy.robust_method", "strategy.trim_beta"),
        "strategy.name",
        ("robust",),
        "aggregates by median or trimmed mean",
        refused=True,
    ),
    UnreadRule(
        tuple(
            f"model.{key}"
            for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size")
        ),
        "model.path",
        (TINY_RANDOM,),
        "builds a model from these keys; a checkpoint brings its own shape",
        refused=True,
    ),
    UnreadRule(
        tuple(
            f"task.{key}"
            for key in (
                "max_per_chapter",
                "min_per_chapter",
                "test_fraction",
                "transfer_fraction",
            )
        ),
        "task.name",
        ("hospital",),
        "splits its records by these keys",
        refused=True,
    ),
    UnreadRule(
        ("tracking.uri", "tracking.experiment"),
        "tracking.name",
        ("mlflow",),
        "logs to a tracker",
        # `fedmodel resume RUN tracking=none` keeps the run's tracking.uri.
        refused=False,
    ),
    UnreadRule(
        ("partition.alpha", "partition.min_partition_size"),
        "partition.name",
        ("dirichlet",),
        "deals the records out by label skew",
        refused=False,
    ),
    UnreadRule(
        ("partition.column", "partition.label_groups"),
        "partition.name",
        ("natural",),
        "makes the clients from a column or label groups",
        refused=False,
    ),
    UnreadRule(
        ("finetune.lora_rank", "finetune.lora_alpha", "finetune.lora_targets"),
        "finetune.mode",
        ("lora",),
        "trains adapters",
        refused=False,
    ),
    UnreadRule(
        ("privacy.target_epsilon", "privacy.target_delta", "privacy.accountant"),
        "privacy.mode",
        ("dpsgd", "central"),
        "spend a privacy budget",
        refused=False,
    ),
    UnreadRule(
        tuple(
            f"privacy.{key}"
            for key in (
                "initial_clipping_norm",
                "target_clipped_quantile",
                "clip_norm_lr",
                "clipped_count_stddev",
            )
        ),
        "privacy.mode",
        ("central",),
        "clips and noises each client's update on the server",
        refused=False,
    ),
    UnreadRule(
        (
            *(
                f"distill.student.{key}"
                for key in ("num_layers", "layers", "feed_forward_share", "max_length")
            ),
            *(
                f"distill.{key}"
                for key in (
                    "temperature",
                    "kl_weight",
                    "hidden_weight",
                    "epochs",
                    "learning_rate",
                    "batch_size",
                    "augment_copies",
                )
            ),
        ),
        "distill.name",
        ("server", "federated"),
        "distil a student",
        refused=False,
    ),
    UnreadRule(
        (
            "federation.cpus_per_client",
            "federation.gpus_per_client",
            "federation.ray_address",
        ),
        "federation.name",
        ("simulation",),
        "runs the clients here, under Ray; a deployed site uses its own hardware",
        refused=False,
    ),
)


def check_unread_keys(settings: RunSettings) -> None:
    """Refuse a key set for an option that does not read it (a refused rule's)."""
    for rule in UNREAD_RULES:
        for said, fix in _unread(settings, rule) if rule.refused else ():
            raise FedmodelError(f"{said}: {fix}")


def unread_key_warnings(settings: RunSettings) -> list[str]:
    """One line for each key of a warned rule set for an option that ignores it."""
    return [
        f"{said}, so it changes nothing in this run: {fix}"
        for rule in UNREAD_RULES
        if not rule.refused
        for said, fix in _unread(settings, rule)
    ]


def _unread(settings: RunSettings, rule: UnreadRule) -> list[tuple[str, str]]:
    """Each of `rule`'s keys set where its choice ignores it: what, and the fix."""
    chosen = _value(settings, rule.choice)
    if chosen in rule.readers:
        return []
    group = rule.choice.split(".")[0]
    shipped = _packaged(
        tuple(
            f"{g}={option}"
            for g, key in OPTION_KEYS.items()
            # A name no option file has is refused by its own check, in words
            # of its own; the group's default stands in for it here.
            if (CONF_DIR / g / f"{(option := _value(settings, key))}.yaml").is_file()
        )
    )
    named = group if OPTION_KEYS[group] == rule.choice else rule.choice
    readers = [f"{named}={reader}" for reader in rule.readers]
    return [
        (
            f"{key}={_shown(value)} is set, but {named}={chosen} does not read it "
            f"(only {' and '.join(readers)} {rule.does})",
            f"choose {' or '.join(readers)}, or drop {key}",
        )
        for key in rule.keys
        if (value := _value(settings, key)) != shipped[key]
        and key not in settings.budget_rule_keys
    ]


def _value(settings: RunSettings, key: str) -> Any:
    return functools.reduce(getattr, key.split("."), settings)


@functools.cache
def _packaged(options: tuple[str, ...]) -> dict[str, Any]:
    """The dotted keys the chosen options' packaged YAML gives, in one compose.

    One compose of every group's choice (about 0.2 s; a run's processes each
    check their settings once) rather than one per group.
    """
    return dotted(compose_config(list(options)))


def _shown(value: Any) -> str:
    """`value` as an override writes it: true, 0.5, 'ghost', [query, value]."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)
