"""Typed run settings: one frozen dataclass per config group.

No field has a default: every value comes from the packaged YAML in
`fedmodel/conf` (composed by Hydra), so what `fedmodel simulate --cfg job`
prints is what runs. A key missing from the composed config is an error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSettings:
    """Which records the clients and the server hold."""

    name: str
    max_length: int
    val_fraction: float
    max_train_examples: int | None
    max_test_examples: int | None
    max_per_chapter: int
    min_per_chapter: int
    test_fraction: float
    transfer_fraction: float
    train_files: list[str]
    test_file: str | None
    # Files task: labelled records the server holds itself (no client's), used
    # as the transfer split: warm start, the check against the start, distillation.
    validation_file: str | None
    text_column: str
    label_column: str
    labels: list[str] | None
    # A file of public descriptions of the labels (label column, `description`
    # column), embedded instead of the names for the head's zero-shot start.
    label_descriptions: str | None
    # Seeds the task's own splits and caps; None follows the run seed.
    split_seed: int | None


@dataclass(frozen=True)
class ModelSettings:
    """The shared encoder and its classification head."""

    name: str
    path: str
    pooling: str
    normalize: bool
    dropout: float
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int


@dataclass(frozen=True)
class FinetuneSettings:
    """What local training moves, and how."""

    mode: str
    optimizer: str
    learning_rate: float
    batch_size: int
    local_epochs: int
    momentum: float
    weight_decay: float
    train_embeddings: bool
    # False: the classification layer's bias keeps its starting value in local
    # training (it is still exchanged), so DP-SGD's clipping budget goes to
    # the weights alone.
    train_head_bias: bool
    lora_rank: int
    lora_alpha: int
    lora_targets: list[str]


@dataclass(frozen=True)
class PartitionSettings:
    """How the training records are split across clients."""

    name: str
    alpha: float
    min_partition_size: int
    column: str | None
    label_groups: dict[str, str] | None


@dataclass(frozen=True)
class PrivacySettings:
    """Differential privacy: DP-SGD on each client, client-level DP, or none."""

    mode: str
    target_epsilon: float | None
    target_delta: float | None
    max_grad_norm: float | None
    accountant: str
    # DP-SGD's per-example clipping: "hooks" (per-example gradients), "ghost"
    # (Opacus' ghost clipping) or "onepass" (fedmodel's, one backward pass);
    # None follows the finetune mode.
    grad_sample_mode: str | None
    # privacy=central only: Flower's server-side adaptive clipping.
    initial_clipping_norm: float
    target_clipped_quantile: float
    clip_norm_lr: float
    clipped_count_stddev: float | None

    @property
    def enabled(self) -> bool:
        """Whether any differential privacy is on (record- or client-level)."""
        return self.mode != "off"

    @property
    def record_level(self) -> bool:
        """Whether each client runs DP-SGD (local, record-level DP)."""
        return self.mode == "dpsgd"

    @property
    def client_level(self) -> bool:
        """Whether the server adds client-level DP (central DP)."""
        return self.mode == "central"


@dataclass(frozen=True)
class StrategySettings:
    """Server-side aggregation."""

    name: str
    fraction_train: float
    min_train_clients: int
    proximal_mu: float
    eta: float
    eta_l: float
    beta_1: float
    beta_2: float
    tau: float
    robust_method: str
    trim_beta: float


@dataclass(frozen=True)
class StudentSettings:
    """The smaller model the teacher is distilled into."""

    num_layers: int
    # Teacher layers the student starts from (0-based); None spreads
    # `num_layers` evenly from the first layer to the last.
    layers: list[int] | None
    # Share of the teacher's feed-forward units each layer keeps (its most
    # important ones); 1.0 keeps all of them.
    feed_forward_share: float
    # Tokens the student reads (and is served with); None: task.max_length.
    max_length: int | None


@dataclass(frozen=True)
class DistillSettings:
    """Distillation of the federated teacher into a student."""

    name: str
    student: StudentSettings
    temperature: float
    # Loss = kl_weight * KL(teacher || student at temperature) * T^2
    #      + hidden_weight * (1 - cosine(student, teacher pooled vectors)).
    kl_weight: float
    hidden_weight: float
    epochs: int
    learning_rate: float
    # fp32, or bf16: server distillation's forward pass under bfloat16 autocast.
    precision: str
    batch_size: int
    # Extra copies of each transfer text with words dropped and swapped.
    augment_copies: int
    # Texts the server holds for distillation (CSV/TSV/JSONL/Parquet/TXT); None
    # uses the task's transfer split.
    transfer_file: str | None
    # distill=federated: rounds in which clients distil the student on their
    # own records under DP-SGD, after the teacher's rounds.
    rounds: int

    @property
    def enabled(self) -> bool:
        """Whether a student is trained at all."""
        return self.name != "off"

    @property
    def client_rounds(self) -> int:
        """Student rounds the clients train, charged to their privacy budgets."""
        return self.rounds if self.name == "federated" else 0


@dataclass(frozen=True)
class FederationSettings:
    """Where the clients run."""

    name: str
    cpus_per_client: float
    round_timeout: float
    allow_failed_clients: bool
    # A round counts only with at least this many accepted updates.
    min_replies: int
    # Simulation only: GPUs per client (Flower's client-resources num-gpus)
    # and an existing Ray cluster to run on (None: a local one).
    gpus_per_client: float
    ray_address: str | None


@dataclass(frozen=True)
class WarmStartSettings:
    """Fitting the head on the server's own labelled transfer split first."""

    enabled: bool
    epochs: int
    learning_rate: float
    batch_size: int


@dataclass(frozen=True)
class LatencySettings:
    """How many calls time each exported model as served, per batch size."""

    calls_batch1: int
    calls_batch32: int

    def calls_at(self, batch_size: int) -> int:
        """The timed calls at `batch_size`; a KeyError for a batch with no key."""
        return {1: self.calls_batch1, 32: self.calls_batch32}[batch_size]


@dataclass(frozen=True)
class AuditSettings:
    """Canary records planted in one client's training split, for `fedmodel audit`."""

    canaries: int
    client: int
    reference_canaries: int


@dataclass(frozen=True)
class TrackingSettings:
    """Where a run's config, metrics and artifacts are also logged."""

    name: str
    uri: str | None
    experiment: str


@dataclass(frozen=True)
class RunSettings:
    """Everything one federated run needs, typed."""

    task: TaskSettings
    model: ModelSettings
    finetune: FinetuneSettings
    partition: PartitionSettings
    privacy: PrivacySettings
    strategy: StrategySettings
    distill: DistillSettings
    federation: FederationSettings
    num_clients: int
    num_rounds: int
    seed: int
    device: str
    warm_start: WarmStartSettings
    # Head initialised from the encoder's embeddings of the label names.
    label_init: bool
    # Keep the last round's global model unless the start has a lower loss on
    # the server's own validation (transfer) split; the test split chooses nothing.
    keep_best: bool
    checkpoint_every_round: bool
    latency: LatencySettings
    run_dir: str
    resume: bool
    audit: AuditSettings
    tracking: TrackingSettings
    # The dotted keys whose values the budget rule filled (left null in the
    # YAML), recorded when the config is resolved (`config/budget_rule.py`).
    budget_rule_keys: list[str]
