"""Which keys only some options read: the rules `unread_keys` checks.

A rule is a warning, not a refusal, where a sweep legitimately sets its keys
for jobs of several options: `simulations/privacy_sweep.sh` passes its extra
overrides to its privacy=dpsgd, central and off jobs and to the centralized
(partition=iid) ones, docs/privacy-research.md's sweep runs finetune=head and
lora side by side, and the tests' small runs shrink the student under
distill=off too.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmodel.config.modes import EMBEDDING_MODE_NAMES, SIMULATION, TINY_RANDOM


@dataclass(frozen=True)
class UnreadRule:
    """`keys`, read only where the key `choice` is one of `readers`."""

    keys: tuple[str, ...]
    # An option's key (finetune.mode) or any other (finetune.optimizer).
    choice: str
    readers: tuple[str | bool, ...]
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
                    "precision",
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
        (SIMULATION,),
        "runs the clients here, under Ray; a deployed site uses its own hardware",
        refused=False,
    ),
    # Left unread by another key's value rather than by an option; a sweep
    # may cross either key with the other (finetune.optimizer=sgd,adam).
    UnreadRule(
        ("finetune.momentum",),
        "finetune.optimizer",
        ("sgd",),
        "uses it; Adam and AdamW keep moment estimates of their own",
        refused=False,
    ),
    UnreadRule(
        ("strategy.trim_beta",),
        "strategy.robust_method",
        ("trimmed_mean",),
        "cuts that share from each end",
        refused=False,
    ),
    UnreadRule(
        tuple(f"warm_start.{key}" for key in ("epochs", "learning_rate", "batch_size")),
        "warm_start.enabled",
        (True,),
        "fits the head on the server's records before round 1",
        refused=False,
    ),
)
