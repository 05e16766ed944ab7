"""What the server checks before round 1, so a bad run stops before any charge.

The ServerApp calls `check_before_round_one` first thing, in simulation and in a
deployment alike: no client has trained, and no ledger has been charged, when
one of these checks stops the run. That includes what distillation needs after
the last round: a setting it would refuse then would stop a run whose clients
had spent their budget for nothing. `fedmodel simulate` asks
`check_model_and_distillation` before Ray starts too (`cli/simulate.py`), so a
typo there is refused in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fedmodel.config import RunSettings
from fedmodel.config.budget_rule import unmeasured_budget
from fedmodel.config.modes import SIMULATION
from fedmodel.data.clients import load_client_data
from fedmodel.data.file_roles import check_transfer_file, warn_pooled_files
from fedmodel.data.label_descriptions import warn_unused_descriptions
from fedmodel.data.label_warnings import warn_labels
from fedmodel.data.record_labels import warn_lone_labels
from fedmodel.data.shared_texts import warn_shared_texts
from fedmodel.data.tasks import TaskData
from fedmodel.data.transfer_texts import transfer_file_texts
from fedmodel.distill.precision import check_precision
from fedmodel.model.checkpoint_check import (
    EncoderShape,
    check_checkpoint,
    check_length,
)
from fedmodel.model.device import resolve_device
from fedmodel.model.finetune import finetune_mode
from fedmodel.model.load import (
    classifier_config,
    encoder_skeleton,
    load_tokenizer,
    text_normalizer,
)
from fedmodel.model.student import student_layer_indices
from fedmodel.privacy.client_level import plan_client_level
from fedmodel.privacy.client_plan import plan_client
from fedmodel.run.folder_check import check_writable_folder

log = logging.getLogger(__name__)

# Above this target epsilon a DP guarantee says next to nothing about any one
# record: the run goes ahead, with a warning that shows the noise it came to.
WEAK_PRIVACY_EPSILON = 50.0


def check_before_round_one(settings: RunSettings) -> list[str] | None:
    """Refuse an unwritable run folder or a model.path that is not a BERT checkpoint.

    Then refuse distillation settings the teacher cannot meet
    (`check_distillation`), and warn when `privacy.target_epsilon` is above
    `WEAK_PRIVACY_EPSILON`, below the budgets the budget rule was measured at
    (`unmeasured_budget`), or set under privacy=off (`warn_unused_budget`).
    Returns the texts of `distill.transfer_file`, read here for the check:
    the server's warnings before round 1 and its distillation after the last
    round take these, so the file is read once per start of the server (None
    without distillation or without such a file).
    """
    check_writable_folder(Path(settings.run_dir), key="run_dir")
    texts = check_model_and_distillation(settings)
    warn_weak_privacy(settings)
    warn_unused_budget(settings)
    note = unmeasured_budget(settings)
    if note is not None:
        log.warning("%s", note)
    return texts


def check_model_and_distillation(settings: RunSettings) -> list[str] | None:
    """Refuse a model.path, finetune or distillation settings the run cannot start with.

    `check_checkpoint`, then the finetune mode's `check_encoder` (LoRA's
    targets) on the encoder's weightless skeleton, then `check_distillation`
    against the encoder found; `fedmodel privacy-plan` asks it too, so a plan
    is never shown for a run that would stop here. A hub id's skeleton and
    shape come from its config as the run reads it (the local cache), so one
    the run cannot read is refused here too. Returns the transfer file's texts (None
    without one).
    """
    encoder = check_checkpoint(settings.model, max_length=settings.task.max_length)
    skeleton = encoder_skeleton(settings.model)
    finetune_mode(settings.finetune).check_encoder(skeleton, settings.finetune)
    return check_distillation(settings, encoder=encoder or _hub_encoder(settings))


def _hub_encoder(settings: RunSettings) -> EncoderShape:
    """A hub id's encoder shape, from its config.json in the local cache.

    `check_checkpoint` reads no hub cache; the skeleton above has just read
    this config, so it is there. Without this, a token limit beyond the
    positions failed inside the model, and a student the teacher cannot give
    was refused only after the rounds, the clients' budget spent.
    """
    config = classifier_config(settings.model)
    shape = EncoderShape(
        num_layers=config.num_hidden_layers,
        max_positions=config.max_position_embeddings,
        where=f"model.path {settings.model.path!r} (from the local hub cache)",
    )
    check_length(shape, key="task.max_length", value=settings.task.max_length)
    return shape


def check_distillation(
    settings: RunSettings, *, encoder: EncoderShape
) -> list[str] | None:
    """Refuse what would stop distillation after the teacher's rounds.

    The transfer file must be the server's own (no site's, not the test
    file) and is read as distillation reads it; the student's layers must be
    the teacher's and its token limit must fit the positions of `encoder`,
    the teacher's; `distill.precision=bf16` needs a device with bfloat16
    arithmetic (`check_precision`). Returns the transfer file's texts (None
    without one).
    """
    distill = settings.distill
    if not distill.enabled:
        return None
    check_transfer_file(settings)
    check_precision(distill.precision, resolve_device(settings.device))
    texts = transfer_file_texts(settings)
    student_layer_indices(encoder.num_layers, distill.student)
    if distill.student.max_length is not None:
        check_length(
            encoder, key="distill.student.max_length", value=distill.student.max_length
        )
    return texts


def warn_weak_privacy(
    settings: RunSettings, *, sigmas: list[float] | None = None
) -> None:
    """Warn, naming the noise multiplier, when the target epsilon is very large.

    In simulation the multiplier is each client's own plan; in a deployment each
    site calibrates its own, from records the server never sees. `sigmas`: the
    noise multipliers where the caller has planned them (`fedmodel
    privacy-plan`); None plans them here.
    """
    privacy = settings.privacy
    epsilon = privacy.target_epsilon
    if not privacy.enabled or epsilon is None or epsilon <= WEAK_PRIVACY_EPSILON:
        return
    if sigmas is None:
        sigmas = _planned_noise(settings)
    came_to = "each site calibrates its noise multiplier from it"
    if sigmas:
        spread = f" to {max(sigmas):.3g}" if max(sigmas) > min(sigmas) else ""
        came_to = f"the noise multiplier came to {min(sigmas):.3g}{spread}"
    log.warning(
        "privacy.target_epsilon=%g is above %g: this is no meaningful privacy "
        "(%s, next to no noise). Continuing as asked; use a target of 1 to 10 "
        "for a guarantee that protects records",
        epsilon,
        WEAK_PRIVACY_EPSILON,
        came_to,
    )


def warn_unused_budget(settings: RunSettings) -> None:
    """Warn when privacy=off carries a target epsilon, which nothing spends.

    Not refused: an experiment's non-private twin (`experiment=banks_eps8
    privacy=off`) keeps the experiment's target.
    """
    privacy = settings.privacy
    if privacy.enabled or privacy.target_epsilon is None:
        return
    log.warning(
        "privacy.target_epsilon=%g is not used: privacy=off trains without "
        "clipping or noise and charges no budget (privacy=dpsgd trains to it)",
        privacy.target_epsilon,
    )


def _planned_noise(settings: RunSettings) -> list[float]:
    """The noise multipliers the run will use: none known in a deployment."""
    if settings.privacy.client_level:
        return [plan_client_level(settings).noise_multiplier]
    if settings.federation.name == SIMULATION:
        return [_client_noise(settings, cid) for cid in range(settings.num_clients)]
    return []


def _client_noise(settings: RunSettings, client_id: int) -> float:
    train, _, _ = load_client_data(settings, client_id)
    plan = plan_client(settings, num_records=len(train), client_id=str(client_id))
    return plan.noise_multiplier


def warn_about_records(
    settings: RunSettings, task: TaskData, *, distill_texts: list[str] | None
) -> None:
    """Warn, once per run, about what the records the server loaded would skew.

    The server calls it before round 1, and `fedmodel privacy-plan` before it
    plans, so the plan warns of what the run will. Only records that name
    their site have texts to compare across sites, as the tokenizer reads
    them; the others need no tokenizer here.
    """
    warn_pooled_files(settings)
    if task.has_sites:
        normalize = text_normalizer(load_tokenizer(settings.model))
        warn_shared_texts(
            settings, task, normalize=normalize, distill_texts=distill_texts
        )
    warn_labels(task)
    warn_unused_descriptions(settings.task, task.label_names, task.label_descriptions)
    warn_lone_labels(settings.task, task)
    if distill_texts is None and (task.transfer is None or len(task.transfer) == 0):
        warn_no_server_texts(settings)


def warn_no_server_texts(settings: RunSettings) -> None:
    """Say that the server holds no texts to distil on, and what that leaves.

    Only a files task without `task.validation_file` lacks them; the server
    says it before round 1, so the run is not found without its student only
    at the end.
    """
    if not settings.distill.enabled:
        return
    log.warning(
        "the server holds no texts to distil the student on (a files task "
        "without task.validation_file or distill.transfer_file): %s",
        "the clients alone distil it"
        if settings.distill.client_rounds
        else "no student is made; name either file (distill.transfer_file: "
        "unlabelled texts the server holds), or set distill=off",
    )
