"""Record-level DP-SGD for each client: calibrate, wrap, account, persist.

`plan_privacy` calibrates noise for a target (epsilon, delta); `private_training`
wraps the training objects with Opacus; `PrivacyLedger` keeps each client's
budget on disk, charged before an update leaves the client. Every epsilon comes
from `epsilon_for`. Nothing here imports Flower.
"""

from fedmodel.privacy.calibration import (
    PrivacyPlan,
    calibrate_noise,
    choose_delta,
    epsilon_for,
    plan_privacy,
)
from fedmodel.privacy.engine import (
    Criterion,
    PrivateTraining,
    StepCounter,
    private_training,
)
from fedmodel.privacy.ledger import BudgetExhausted, PrivacyLedger
from fedmodel.privacy.ledger_record import RoundCharge
from fedmodel.privacy.sampling import poisson_steps_per_epoch, sample_rate_for

__all__ = [
    "BudgetExhausted",
    "Criterion",
    "PrivacyLedger",
    "PrivacyPlan",
    "PrivateTraining",
    "RoundCharge",
    "StepCounter",
    "calibrate_noise",
    "choose_delta",
    "epsilon_for",
    "plan_privacy",
    "private_training",
    "poisson_steps_per_epoch",
    "sample_rate_for",
]
