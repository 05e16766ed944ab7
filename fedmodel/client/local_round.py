"""One client's local round: fine-tune or distil on its records, charged under DP-SGD.

No Flower imports: the ClientApp hands in weights and settings (and a site's
records, read by `client/site_data.py`; a simulated client's are loaded here)
and wraps the returned `RoundOutcome` in a reply. Only the trainable weights
and numbers leave this module; records, token ids and features stay in the
client's process and its state directory. What trains is a job
(`client/jobs.py`); with DP-SGD the round is charged and wrapped by
`client/private_round.py`. The data library is imported only when a simulated
client loads its partition: a head-mode round on features already on disk
trains without it or transformers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.optim import Optimizer

from fedmodel.client.jobs import (
    LocalJob,
    distill_job,
    finetune_job,
    stored_features_job,
)
from fedmodel.client.private_round import PrivateRound
from fedmodel.client.round_records import RoundRecords
from fedmodel.client.round_streams import dropout_seed
from fedmodel.config import RunSettings
from fedmodel.model.finetune import finetune_mode, held_fixed
from fedmodel.model.head import trainable_state
from fedmodel.privacy.modes import privacy_mode
from fedmodel.training.embedding_cache import stored_features
from fedmodel.training.feature_store import StoredFeatures
from fedmodel.training.fingerprint import data_fingerprint
from fedmodel.training.loops import build_optimizer, train_epochs


@dataclass(frozen=True)
class RoundOutcome:
    """What a client's round produced; `released_metrics` is what may leave."""

    weights: dict[str, torch.Tensor] | None
    num_examples: int
    train_loss: float
    budget_exhausted: bool = False
    privacy: dict[str, float] = field(default_factory=dict)
    compute_seconds: float = 0.0
    # Building the round's job before training; local. The model and what it
    # reads: a head round's first embedding of every record, a simulated text
    # round's tokenization of every record (and its read of them; a site's
    # records are tokenized as its file is read).
    prepare_seconds: float = 0.0
    # Central DP: the server's noise covers the weights only, not statistics.
    withhold_statistics: bool = False

    @classmethod
    def exhausted(cls, privacy: dict[str, float]) -> RoundOutcome:
        """A round its ledger refused: nothing trained, only `privacy` to report."""
        return cls(
            weights=None,
            num_examples=0,
            train_loss=float("nan"),
            budget_exhausted=True,
            privacy=privacy,
        )

    def released_metrics(self) -> dict[str, float]:
        """The numbers a reply may carry besides the weights.

        Under DP only what the guarantee covers or what is public anyway: the
        record count (FedAvg's weight) and the privacy figures, which depend on
        the count and the plan alone. The training loss and compute time are
        computed from the records without noise, so they are released only in
        non-private runs.
        """
        released = {"num-examples": float(self.num_examples), **self.privacy}
        if not (self.privacy or self.budget_exhausted or self.withhold_statistics):
            released["train-loss"] = self.train_loss
            released["compute-seconds"] = self.compute_seconds
        return released


def run_local_round(
    settings: RunSettings,
    *,
    client_id: int,
    state_dir: Path,
    global_weights: dict[str, torch.Tensor],
    round_number: int,
    records: RoundRecords | None = None,
    teacher_weights: dict[str, torch.Tensor] | None = None,
) -> RoundOutcome:
    """Train on this client's records for one round and return the update.

    Without `teacher_weights` it fine-tunes the global model (`global_weights`);
    with them the student (`global_weights`) learns the teacher's outputs. Under
    DP-SGD its cost goes to the client's ledger before training (a crash
    over-counts, never under-counts); over budget it does not train. `records`
    are a site's; None: a simulated one's.
    """
    started = time.perf_counter()
    trained_on = records or _simulated_records(
        settings, client_id, state_dir=state_dir, distill=teacher_weights is not None
    )
    train_split = trained_on.split
    state_dir.mkdir(parents=True, exist_ok=True)
    job = _job(
        settings,
        records=trained_on,
        global_weights=global_weights,
        teacher_weights=teacher_weights,
        state_dir=state_dir,
        client_id=client_id,
        round_number=round_number,
    )
    prepare_seconds = time.perf_counter() - started
    mode = privacy_mode(settings.privacy)
    private: PrivateRound | None = None
    with held_fixed(job.held):
        # Built before the charge: a bad optimizer setting must cost no budget.
        optimizer = build_optimizer(job.module.parameters(), job.optimizer)
        if mode.client_dpsgd:
            private = PrivateRound.open(
                settings,
                client_id=client_id,
                state_dir=state_dir,
                split=train_split,
                at_site=records is not None,
            )
            if not private.charge(round_number):
                return RoundOutcome.exhausted(private.figures())
        seed_dropout(settings, client_id=client_id, round_number=round_number)
        loss = _train(settings, job, optimizer=optimizer, private=private)
    return RoundOutcome(
        weights=trainable_state(job.exchanged),
        num_examples=len(train_split),
        train_loss=loss,
        privacy={} if private is None else private.figures(),
        compute_seconds=time.perf_counter() - started,
        prepare_seconds=prepare_seconds,
        withhold_statistics=not mode.releases_statistics,
    )


def seed_dropout(settings: RunSettings, *, client_id: int, round_number: int) -> None:
    """Seed torch's global generator, which dropout draws from, for this round.

    `build_classifier` seeds it with the run's seed for the head every party
    builds alike, so without this every client drew the same dropout masks in
    every round. Without DP-SGD each (seed, client, round) has a stream of its
    own, the same in every run of the seed. Under DP-SGD the masks come from the
    operating system, as its noise and batch sampling do: from a stream the
    server can compute, which mask a record gets depends on which other records
    were sampled before it, so one record would move the others' clipped
    gradients, which the noise is not calibrated for.
    """
    if privacy_mode(settings.privacy).client_dpsgd:
        torch.seed()
        return
    torch.manual_seed(
        dropout_seed(settings.seed, client_id=client_id, round_number=round_number)
    )


def _simulated_records(
    settings: RunSettings, client_id: int, *, state_dir: Path, distill: bool
) -> RoundRecords:
    """The simulated client's training split and the label names.

    Refused where the task's files are not the bytes the run began with
    (`check_files_read`). In a head-mode fine-tuning round (not `distill`)
    the features an earlier round stored for exactly these records stand in
    for them, as at a site: the round trains the head without building the
    encoder.
    """
    from fedmodel.client.task_files_read import check_files_read
    from fedmodel.data.clients import client_data_read

    read = client_data_read(settings, client_id)
    check_files_read(settings, client_id=client_id, read=read.file_sha256)
    train_split, label_names = read.train, read.label_names
    if not distill and finetune_mode(settings.finetune).on_features:
        fingerprint = data_fingerprint(train_split)
        stored = stored_features(settings, fingerprint=fingerprint, state_dir=state_dir)
        if stored is not None:
            return RoundRecords(split=stored, label_names=label_names)
    return RoundRecords(split=train_split, label_names=label_names)


def _train(
    settings: RunSettings,
    job: LocalJob,
    *,
    optimizer: Optimizer,
    private: PrivateRound | None,
) -> float:
    """Train the job's epochs (under DP-SGD when charged); return the mean loss."""
    module, loader, loss_fn = job.module, job.loader, job.loss_fn
    if private is not None:
        module, optimizer, loader, loss_fn = private.wrap(
            module, optimizer, loader, loss_fn=loss_fn
        )
    strategy = settings.strategy
    loss = train_epochs(
        module,
        loader,
        optimizer,
        logits_fn=job.logits_of(module),
        epochs=settings.finetune.local_epochs,
        proximal_mu=strategy.proximal_mu if strategy.name == "fedprox" else 0.0,
        loss_fn=loss_fn,
    )
    if private is not None:
        private.check_within_charge()
    return loss


def _job(
    settings: RunSettings,
    *,
    records: RoundRecords,
    global_weights: dict[str, torch.Tensor],
    teacher_weights: dict[str, torch.Tensor] | None,
    state_dir: Path,
    client_id: int,
    round_number: int,
) -> LocalJob:
    """What this round trains: the shared model, or the student under distillation.

    Features a head-mode site stored in an earlier round train the head with
    no encoder; with no teacher the shared model is fine-tuned; with one, the
    global weights are the student's and the round distils the teacher into it.
    """
    split = records.split
    if isinstance(split, StoredFeatures):
        return stored_features_job(
            settings,
            stored=split,
            global_weights=global_weights,
            client_id=client_id,
            round_number=round_number,
        )
    if teacher_weights is None:
        return finetune_job(
            settings,
            split=split,
            encoded=records.encoded,
            label_names=records.label_names,
            global_weights=global_weights,
            state_dir=state_dir,
            client_id=client_id,
            round_number=round_number,
        )
    return distill_job(
        settings,
        split=split,
        encoded=records.encoded,
        label_names=records.label_names,
        student_weights=global_weights,
        teacher_weights=teacher_weights,
        client_id=client_id,
        round_number=round_number,
    )
