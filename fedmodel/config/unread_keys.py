"""Finetune and clipping keys set for a mode that does not read them: refused.

Every finetune option carries `train_embeddings: false` and every privacy
option `grad_sample_mode` and `max_grad_norm` null, so only a value the user
set is refused (the budget rule's, listed in `budget_rule_keys`, is not).
Accepted, each would have had no effect, and the run would not have said so:
LoRA with its embeddings still frozen, or privacy=central with no example
clipped.
"""

from __future__ import annotations

from fedmodel.config.modes import EMBEDDING_MODE_NAMES
from fedmodel.config.schema import RunSettings
from fedmodel.errors import FedmodelError


def check_unread_keys(settings: RunSettings) -> None:
    """Refuse `finetune.train_embeddings` and per-example clipping keys unread."""
    finetune = settings.finetune
    if finetune.train_embeddings and finetune.mode not in EMBEDDING_MODE_NAMES:
        raise FedmodelError(
            f"finetune.train_embeddings=true is set, but finetune={finetune.mode} "
            f"does not read it (only finetune={'/'.join(EMBEDDING_MODE_NAMES)} "
            "trains the embeddings): choose that mode, or drop "
            "finetune.train_embeddings"
        )
    privacy = settings.privacy
    if privacy.record_level:
        return
    set_by_user = {
        "privacy.grad_sample_mode": privacy.grad_sample_mode,
        # Left to the rule, it is null without DP-SGD (`with_budget_defaults`).
        "privacy.max_grad_norm": privacy.max_grad_norm,
    }
    for key, value in set_by_user.items():
        if value is not None and key not in settings.budget_rule_keys:
            raise FedmodelError(
                f"{key}={value!r} is set, but privacy={privacy.mode} clips no "
                "example (only privacy=dpsgd clips each example's gradient; "
                "privacy=central clips each client's whole update on the server, "
                "by privacy.initial_clipping_norm): choose privacy=dpsgd, or "
                f"drop {key}"
            )
