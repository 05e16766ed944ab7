"""What a resume keeps of the encoder: the files `model.path` names, by content.

The checkpoint holds what the run trains (the head, LoRA's adapters, the
encoder's weights but those kept frozen) and goes on with the encoder the
resume loads. One of the same shape but other weights, vocabulary or
tokenizer passes the checkpoint's shape check, and the run would go on
from weights trained on another encoder's features. So each start keeps
the identity of the encoder it loaded (`encoder_identity`: a digest of its
config, weights and tokenizer files; a hub id as named; the tiny random
model by its seed): the same files moved or installed elsewhere are the
same encoder, another model, or the run's files changed, is not. A run
folder written before this record was kept is checked by shapes alone.
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.location import encoder_identity
from fedmodel.privacy.durable_file import write_durably
from fedmodel.run.layout import ENCODER_IDENTITY, RESOLVED_CONFIG, checkpoint_file
from fedmodel.run.resumed_settings import value_at
from fedmodel.run.run_files import recorded_line
from fedmodel.run.stored_config import stored_config


def record_encoder(run_dir: Path, settings: RunSettings) -> None:
    """Keep the identity of the encoder this start loaded, beside its config."""
    write_durably(run_dir / ENCODER_IDENTITY, encoder_identity(settings) + "\n")


def check_encoder_kept(run_dir: Path, settings: RunSettings) -> None:
    """Refuse a resume whose encoder is not the one the run's checkpoint had.

    Nothing to check before the run's first checkpoint (a resume then starts
    at round 1 from the encoder it loads), nor in an older run folder.
    """
    if not checkpoint_file(run_dir).is_file():
        return
    _check_features_kept(run_dir, settings)
    recorded = recorded_line(run_dir / ENCODER_IDENTITY)
    if recorded is None:
        return
    now = encoder_identity(settings)
    if now == recorded:
        return
    was = value_at(stored_config(run_dir) or {}, "model.path")
    raise FedmodelError(
        f"resume=true in {run_dir} with model.path={settings.model.path!r} (the "
        f"run's: {was!r}), whose encoder ({now}) is not the one the run's "
        f"checkpoint was trained with ({recorded}, as its {ENCODER_IDENTITY} "
        "says): its config, weights or tokenizer files differ, and the "
        "checkpoint's weights would go on with another encoder's features and "
        "vocabulary; resume with the run's model (its files unchanged, "
        f"wherever they are now; model.path in its {RESOLVED_CONFIG}), or "
        "start a new run in a new folder"
    )


# How the encoder's output becomes the features the checkpoint's head reads.
_FEATURE_KEYS = ("model.pooling", "model.normalize")


def _check_features_kept(run_dir: Path, settings: RunSettings) -> None:
    """Refuse a resume whose pooling makes other features of the same encoder."""
    earlier = stored_config(run_dir) or {}
    for key in _FEATURE_KEYS:
        was = value_at(earlier, key)
        now = getattr(settings.model, key.split(".")[1])
        if was is not None and was != now:
            raise FedmodelError(
                f"resume=true in {run_dir} with {key}={now!r} (the run's: {was!r}): "
                "the run's checkpoint was trained on the features its value makes, "
                "and would go on reading other ones; resume with the run's value "
                f"(in its {RESOLVED_CONFIG}), or start a new run in a new folder"
            )
