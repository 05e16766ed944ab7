"""The noise search: least noise within tolerance under the target, never over it."""

import math

import pytest

from fedmodel.privacy.noise_search import (
    EPSILON_TOLERANCE,
    MAX_NOISE,
    NoNoiseSuffices,
    smallest_noise,
)


class Counted:
    """epsilon = scale / sigma^power, with a count of calls."""

    def __init__(self, scale: float, power: float, certifies_above: float = 0.0):
        self.scale, self.power, self.certifies_above = scale, power, certifies_above
        self.calls = 0

    def __call__(self, sigma: float) -> float:
        self.calls += 1
        if sigma <= self.certifies_above:
            return math.inf
        return self.scale / sigma**self.power

    def exact(self, target: float) -> float:
        return (self.scale / target) ** (1 / self.power)


@pytest.mark.parametrize(
    ("scale", "power", "target"),
    [(30.0, 1.0, 1.0), (30.0, 1.3, 8.0), (0.5, 2.0, 50.0), (400.0, 0.9, 0.05)],
)
def test_finds_the_least_noise_in_a_few_calls(
    scale: float, power: float, target: float
) -> None:
    spent_at = Counted(scale, power)
    sigma = smallest_noise(spent_at, target)
    # Bracketing by factors of 4 from noise 1, then a few guesses.
    brackets = math.ceil(abs(math.log(spent_at.exact(target), 4))) + 1
    assert spent_at.calls <= brackets + 5
    tolerance = EPSILON_TOLERANCE * min(1.0, target)
    assert target - tolerance <= spent_at(sigma) <= target
    assert sigma >= spent_at.exact(target)


def test_noise_the_accountant_cannot_evaluate_counts_as_too_little() -> None:
    # The answer for 1000 is noise 0.03, but nothing under 0.1 can be evaluated.
    spent_at = Counted(30.0, 1.0, certifies_above=0.1)
    sigma = smallest_noise(spent_at, 1000.0)
    assert 0.1 < sigma <= 0.1 * 1.001
    assert spent_at(sigma) <= 1000.0


def test_a_target_no_noise_meets_is_refused() -> None:
    tried: list[float] = []

    def spent_at(sigma: float) -> float:
        tried.append(sigma)
        return 1e-3 + 1.0 / sigma

    with pytest.raises(NoNoiseSuffices):
        smallest_noise(spent_at, 1e-3)
    # It gave up only after trying the most noise it allows.
    assert max(tried) == MAX_NOISE
