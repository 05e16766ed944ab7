"""Typed run settings: one frozen dataclass per config group."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskSettings:
    """Which records the clients and the server hold."""

    name: str
    max_length: int = 64
    val_fraction: float = 0.1
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    max_per_chapter: int = 1000
    min_per_chapter: int = 50
    test_fraction: float = 0.2
    transfer_fraction: float = 0.05
    train_files: list[str] = field(default_factory=list)
    test_file: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] | None = None
    # Seeds the task's own splits and caps; None follows the run seed.
    split_seed: int | None = None


@dataclass(frozen=True)
class ModelSettings:
    """The shared encoder and its classification head."""

    name: str
    path: str
    pooling: str = "mean"
    normalize: bool = False
    dropout: float = 0.1
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 64


@dataclass(frozen=True)
class FinetuneSettings:
    """What local training moves, and how."""

    mode: str
    optimizer: str
    learning_rate: float
    batch_size: int
    local_epochs: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    train_embeddings: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["query", "value"])


@dataclass(frozen=True)
class PartitionSettings:
    """How the training records are split across clients."""

    name: str
    alpha: float = 0.5
    min_partition_size: int = 10
    column: str | None = None
    label_groups: dict[str, str] | None = None


@dataclass(frozen=True)
class PrivacySettings:
    """Record-level DP-SGD settings, per client."""

    mode: str
    target_epsilon: float | None = None
    target_delta: float | None = None
    max_grad_norm: float | None = None
    accountant: str = "rdp"
    # privacy=central only: Flower's server-side adaptive clipping.
    initial_clipping_norm: float = 0.1
    target_clipped_quantile: float = 0.5
    clip_norm_lr: float = 0.2
    clipped_count_stddev: float | None = None

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
    fraction_train: float = 1.0
    min_train_clients: int = 2
    proximal_mu: float = 0.0
    eta: float = 0.01
    eta_l: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 0.001
    robust_method: str = "median"
    trim_beta: float = 0.2


@dataclass(frozen=True)
class StudentSettings:
    """The smaller model the teacher is distilled into."""

    num_layers: int = 2
    # Teacher layers the student starts from (0-based); None spreads
    # `num_layers` evenly from the first layer to the last.
    layers: list[int] | None = None


@dataclass(frozen=True)
class DistillSettings:
    """Distillation of the federated teacher into a student."""

    name: str
    student: StudentSettings = field(default_factory=StudentSettings)
    temperature: float = 2.0
    # Loss = kl_weight * KL(teacher || student at temperature) * T^2
    #      + hidden_weight * (1 - cosine(student, teacher pooled vectors)).
    kl_weight: float = 1.0
    hidden_weight: float = 1.0
    epochs: int = 4
    learning_rate: float = 1e-4
    batch_size: int = 32
    # Extra copies of each transfer text with words dropped and swapped.
    augment_copies: int = 4
    # Texts the server holds for distillation (CSV/JSONL/Parquet/TXT); None
    # uses the task's transfer split.
    transfer_file: str | None = None
    # distill=federated: rounds in which clients distil the student on their
    # own records under DP-SGD, after the teacher's rounds.
    rounds: int = 0

    @property
    def enabled(self) -> bool:
        """Whether a student is trained at all."""
        return self.name != "off"


@dataclass(frozen=True)
class FederationSettings:
    """Where the clients run."""

    name: str
    cpus_per_client: float = 1.0
    round_timeout: float = 3600.0
    # A round counts only with at least this many accepted updates.
    min_replies: int = 1
    # Simulation only: GPUs per client (Flower's client-resources num-gpus)
    # and an existing Ray cluster to run on (None: a local one).
    gpus_per_client: float = 0.0
    ray_address: str | None = None


@dataclass(frozen=True)
class WarmStartSettings:
    """Fitting the head on the server's own labelled transfer split first."""

    enabled: bool = False
    epochs: int = 30
    learning_rate: float = 2.0
    batch_size: int = 64


@dataclass(frozen=True)
class AuditSettings:
    """Canary records planted in one client's training split, for `fedmodel audit`."""

    canaries: int = 0
    client: int = 0
    reference_canaries: int = 100


@dataclass(frozen=True)
class TrackingSettings:
    """Where a run's config, metrics and artifacts are also logged."""

    name: str = "none"
    uri: str | None = None
    experiment: str = "fedmodel"


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
    device: str = "auto"
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    checkpoint_every_round: bool = True
    run_dir: str = ""
    resume: bool = False
    audit: AuditSettings = field(default_factory=AuditSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
