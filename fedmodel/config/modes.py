"""The names each mode-like config key accepts.

The config checks read them here, at the bottom of the layer order; what each
mode does lives in a registry keyed by the same names in the layer that owns
the behaviour, and a test keeps each registry's keys equal to these:

- `finetune.mode`: `fedmodel.model.finetune.FINETUNE_MODES`
- `privacy.mode`: `fedmodel.privacy.modes.PRIVACY_MODES`
- `distill.name`: `DistillSettings.enabled` and `.client_rounds` (schema.py)
  state what a mode does; privacy planning needs them, so they sit here
- `tracking.name`: `fedmodel.run.tracking.TRACKERS` and `.START_CHECKS`
- `strategy.name` and `strategy.robust_method`:
  `fedmodel.federation.strategy_choice.STRATEGIES` and `.ROBUST_METHODS`
- `privacy.accountant`: Opacus' accountants, used by `fedmodel.privacy.calibration`
- `federation.name`: simulated clients in one process (`fedmodel.federation.simulation`)
  or a deployment's sites (`fedmodel.config.deployment`)
"""

from __future__ import annotations

FINETUNE_MODE_NAMES = ("head", "lora", "full")
# The finetune modes that read `finetune.train_embeddings`
# (`fedmodel.model.finetune`: head trains the head, lora its adapters and head).
EMBEDDING_MODE_NAMES = ("full",)
PRIVACY_MODE_NAMES = ("off", "dpsgd", "central")
DISTILL_MODE_NAMES = ("off", "server", "federated")
# distill.precision: `fedmodel.distill.precision.PRECISIONS`.
DISTILL_PRECISION_NAMES = ("fp32", "bf16")
TRACKER_NAMES = ("none", "mlflow")
STRATEGY_NAMES = ("fedavg", "fedprox", "fedadam", "robust")
ROBUST_METHOD_NAMES = ("median", "trimmed_mean")
# The `model.path` of a random-initialised BERT built from the model keys'
# shape (`fedmodel.model.load`); any other path brings its own shape.
TINY_RANDOM = "tiny-random"
# finetune.optimizer: built by `fedmodel.training.loops.build_optimizer`.
OPTIMIZER_NAMES = ("sgd", "adam", "adamw")
ACCOUNTANT_NAMES = ("rdp", "prv")
SIMULATION = "simulation"
DEPLOYMENT = "deployment"
# privacy.grad_sample_mode: `fedmodel.privacy.engine` wraps with any of them;
# `onepass` fits models whose trainable layers are linear, layer-norm or
# embedding layers (every finetune mode's model).
GRAD_SAMPLE_MODE_NAMES = ("hooks", "ghost", "onepass")
