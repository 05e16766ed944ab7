"""Library warnings the benchmarks silence: each is about what runs do on purpose."""

from __future__ import annotations

import warnings


def silence_known_warnings() -> None:
    """Hide the warnings every DP training step would repeat."""
    # Opacus warns once per engine that secure RNG is off; that is how runs use it.
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    # Opacus' hooks on modules whose inputs need no gradient (the frozen parts).
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    warnings.filterwarnings("ignore", message="Using a non-full backward hook")
    # PEFT asks transformers a deprecated question when it wraps the model.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated"
    )
