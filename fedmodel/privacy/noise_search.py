"""The noise search behind calibration: the least noise that meets a target epsilon.

Epsilon falls as the noise multiplier grows. `smallest_noise` is given a
function from noise multiplier to epsilon (one accountant, one sampling plan)
and finds where it crosses the target, to a tolerance, from below: the noise
it returns never spends more than the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# Calibration stops within this much epsilon under the target (1% of targets
# below 1).
EPSILON_TOLERANCE = 0.01
MAX_NOISE = 1e6
# Or where the noise is known this closely (huge targets, or an accountant that
# cannot evaluate the noise just below the answer).
NARROWEST_BRACKET = 1.0001


class NoNoiseSuffices(Exception):
    """No noise multiplier up to MAX_NOISE meets the target.

    `evaluated`: the accountant gave an epsilon at some noise tried, so the
    target is out of reach whatever it could not evaluate (at MAX_NOISE both
    Opacus accountants can give an epsilon below 0), and its error is not the
    reason to give.
    """

    def __init__(self, target: float, *, evaluated: bool = False) -> None:
        super().__init__(target)
        self.evaluated = evaluated


def smallest_noise(spent_at: Callable[[float], float], target: float) -> float:
    """The smallest noise multiplier whose epsilon is within tolerance below target.

    Epsilon falls as the noise grows, and log epsilon is close to linear in log
    sigma, so after bracketing the answer each guess interpolates on that line,
    aiming half a tolerance under the target: a plan takes a handful of
    accountant calls where plain bisection took 15 to 20 (PRV spends 0.05 to
    0.4 s a call). After two guesses on the same side of the answer the next one
    halves the bracket (in log sigma) instead, so a poor interpolation cannot
    stall the search. The sigma returned always spends at most `target`; an
    infinite epsilon (the accountant could not certify that noise) counts as
    too little noise.
    """
    # Within 0.01 epsilon, or 1% of targets below 1.
    tolerance = EPSILON_TOLERANCE * min(1.0, target)
    low, low_spent, high, high_spent = _bracket(spent_at, target, tolerance)
    aim = target - tolerance / 2
    last_side = None
    same_side = 0
    for _ in range(100):
        if target - high_spent <= tolerance or high / low < NARROWEST_BRACKET:
            return high
        if same_side < 2 and 0.0 < high_spent and low_spent < math.inf:
            # On the line through (log sigma, log epsilon) of both ends.
            slope = (math.log(high_spent) - math.log(low_spent)) / (
                math.log(high) - math.log(low)
            )
            guess = math.exp(
                math.log(low) + (math.log(aim) - math.log(low_spent)) / slope
            )
            # Stay strictly inside the bracket.
            guess = min(max(guess, low * 1.0001), high / 1.0001)
        else:
            guess = math.sqrt(low * high)
        spent = spent_at(guess)
        side = spent <= target
        same_side = same_side + 1 if side == last_side else 0
        last_side = side
        if side:
            high, high_spent = guess, spent
        else:
            low, low_spent = guess, spent
    return high


def _bracket(
    spent_at: Callable[[float], float], target: float, tolerance: float
) -> tuple[float, float, float, float]:
    """Noise `low` spending more than target and `high` within it, with epsilons.

    Starts at noise 1 and moves by factors of 4. Where noise `low` is already
    within tolerance (or negligible), returns it as both ends.
    """
    low, high = 1.0, 1.0
    high_spent = spent_at(high)
    if high_spent > target:
        evaluated = math.isfinite(high_spent)
        while high_spent > target:
            if high >= MAX_NOISE:
                raise NoNoiseSuffices(target, evaluated=evaluated)
            low, low_spent = high, high_spent
            high = min(high * 4.0, MAX_NOISE)
            high_spent = spent_at(high)
            evaluated = evaluated or math.isfinite(high_spent)
        return low, low_spent, high, high_spent
    low_spent = high_spent
    while low_spent <= target:
        if target - low_spent <= tolerance or low < 1e-6:
            return low, low_spent, low, low_spent
        high, high_spent = low, low_spent
        low /= 4.0
        low_spent = spent_at(low)
    return low, low_spent, high, high_spent
