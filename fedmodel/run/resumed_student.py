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
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from fedmodel.config import RunSettings
from fedmodel.errors import FedmodelError
from fedmodel.run.checkpoint import Checkpoint
from fedmodel.run.layout import RESOLVED_CONFIG
from fedmodel.run.resumed_settings import quoted, value_at
from fedmodel.run.stored_config import stored_config

# How the checkpoint's student was built and distilled on the server's texts
# (distill/finish.py, distill/server.py); `distill.name` too, since under
# distill=server the resumed student would not be the checkpoint's.
STUDENT_MADE_WITH = (
    "distill.name",
    "distill.student.num_layers",
    "distill.student.layers",
    "distill.student.feed_forward_share",
    "distill.transfer_file",
    "distill.augment_copies",
    "distill.epochs",
    "distill.batch_size",
    "distill.kl_weight",
    "distill.hidden_weight",
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
        if value_at(earlier, key) != value_at(config, key)
    ]
    if changed:
        raise FedmodelError(
            f"resume=true in {run_dir} with {quoted(changed, config, earlier)}: "
            "the checkpoint holds the student of the run's federated distillation "
            f"(after round {checkpoint.student_round}), built and distilled on the "
            "server's texts with the run's values, and a resume goes on from it, "
            "so these would not take effect though this run's config and summary "
            f"would state them; resume with the run's values (its {RESOLVED_CONFIG}"
            "), or start a new run in a new folder"
        )
