"""What a resume keeps once the run's checkpoint holds a federated student.

Once federated distillation has begun, the checkpoint holds the student of
its rounds so far, built from the teacher and distilled on the server's texts
before them, and a resume goes on from it: the teacher's rounds are over, and
so is the student's build and server distillation. Settings of those steps
changed on resume would not take effect, yet the resumed run's resolved
config and summary.json would state them. The student rounds' own settings
(`distill.rounds`, `distill.learning_rate`, `distill.temperature`) and the
student's token limit (`distill.student.max_length`) act on what is still to
come, and may change as before distillation began.

`distill.transfer_file` is the file's content, not its path: each start
keeps the hash of the bytes whose texts it distils on (`record_transfer_file`),
so the same file moved or mounted elsewhere, with the run folder or not, is
the same, and another file or this one rewritten at the run's path is not. A
run folder written before it did is compared by path.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from fedmodel.config import RunSettings
from fedmodel.data.transfer_texts import transfer_file_sha256
from fedmodel.errors import FedmodelError
from fedmodel.privacy.durable_file import write_durably
from fedmodel.run.checkpoint import Checkpoint
from fedmodel.run.layout import RESOLVED_CONFIG, TRANSFER_FILE_HASH
from fedmodel.run.resumed_settings import quoted, value_at
from fedmodel.run.run_files import recorded_line
from fedmodel.run.stored_config import stored_config
from fedmodel.run.task_file_hashes import content_hash

TRANSFER_KEY = "distill.transfer_file"

# How the checkpoint's student was built and distilled on the server's texts
# (distill/distilled_student.py, distill/server.py); `distill.name` too, since
# under distill=server the resumed student would not be the checkpoint's.
STUDENT_MADE_WITH = (
    "distill.name",
    "distill.student.num_layers",
    "distill.student.layers",
    "distill.student.feed_forward_share",
    TRANSFER_KEY,
    "distill.augment_copies",
    "distill.epochs",
    "distill.batch_size",
    "distill.kl_weight",
    "distill.hidden_weight",
    "distill.precision",
)


def check_student_resume(
    run_dir: Path, checkpoint: Checkpoint, settings: RunSettings
) -> None:
    """Refuse a resume past the teacher's rounds that changes what made the student.

    Nothing to check before federated distillation began (no student in the
    checkpoint), nor under distill=off, which makes no student.
    """
    if checkpoint.student_round is None:
        return
    if checkpoint.round != settings.num_rounds:
        raise FedmodelError(
            f"num_rounds={settings.num_rounds}, but the run in {run_dir} ended its "
            f"teacher's rounds at round {checkpoint.round} and began federated "
            f"distillation: resume with num_rounds={checkpoint.round}"
        )
    earlier = stored_config(run_dir)
    if earlier is None or not settings.distill.enabled:
        return
    config = asdict(settings)
    changed = [
        key
        for key in STUDENT_MADE_WITH
        if key != TRANSFER_KEY and value_at(earlier, key) != value_at(config, key)
    ]
    said = [quoted(changed, config, earlier)] if changed else []
    said += _transfer_file_change(run_dir, config=config, earlier=earlier)
    if said:
        raise FedmodelError(
            f"resume=true in {run_dir} with {', '.join(said)}: the checkpoint "
            "holds the student of the run's federated distillation (after round "
            f"{checkpoint.student_round}), built and distilled on the server's "
            "texts with the run's values, and a resume goes on from it, so these "
            "would not take effect though this run's config and summary would "
            f"state them; resume with the run's values (its {RESOLVED_CONFIG}; "
            f"{TRANSFER_KEY} may name its file moved elsewhere, not another or a "
            "rewritten one), or start a new run in a new folder"
        )


def record_transfer_file(run_dir: Path, settings: RunSettings) -> None:
    """Keep the content hash of the `distill.transfer_file` this start distils on.

    The hash of the bytes its texts were parsed from (`transfer_file_sha256`:
    read once, with them), so a file rewritten since its texts were read is
    not taken for them. Written once the start's checks have passed, beside
    its resolved config; removed where the start reads no such file.
    """
    path = run_dir / TRANSFER_FILE_HASH
    enabled = settings.distill.enabled
    digest = transfer_file_sha256(settings) if enabled else None
    if digest is None:
        path.unlink(missing_ok=True)  # compared by path, as an older run's
        return
    write_durably(path, digest + "\n")


def _transfer_file_change(
    run_dir: Path, *, config: dict[str, Any], earlier: dict[str, Any]
) -> list[str]:
    """How a refusal quotes a transfer file other than the student's; [] if same."""
    named, was = value_at(config, TRANSFER_KEY), value_at(earlier, TRANSFER_KEY)
    # An unreadable hash is an error, not a missing one: compared by path
    # instead, a file rewritten at the run's path would be taken.
    recorded = recorded_line(run_dir / TRANSFER_FILE_HASH) or None
    if named is None or was is None or recorded is None:
        return [quoted([TRANSFER_KEY], config, earlier)] if named != was else []
    now = content_hash(Path(named))
    if now == recorded:
        return []
    return [
        f"{TRANSFER_KEY}={named!r} (the run's: {was!r}), whose content (sha256 "
        f"{now[:12] if now else 'unreadable'}) is not that of the file the "
        f"student was distilled on (sha256 {recorded[:12]}, {TRANSFER_FILE_HASH})"
    ]
