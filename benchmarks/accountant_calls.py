"""How long one PRV epsilon takes, against Opacus' own PRV accountant.

Every epsilon fedmodel states comes from `composed_epsilon`, whose PRV
accountant sizes its grid from RDP vectors remembered per (noise, rate)
(`fedmodel.privacy.accountants`); Opacus' PRVAccountant rebuilds them on each
call. Each history is evaluated fresh (nothing remembered from an earlier
row) by both, at the same error allowance and on one BLAS thread, side by
side; the table shows both times, their ratio and whether the two epsilons
are the same float.
The last row is a whole calibration (`calibrate_noise`) of a default bank
client (2415 records, batch 512, 6 local epochs, 10 rounds) at epsilon 8.

    .venv/bin/python benchmarks/accountant_calls.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opacus.accountants import PRVAccountant  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from fedmodel.privacy import accountants  # noqa: E402
from fedmodel.privacy.calibration import calibrate_noise  # noqa: E402

HISTORIES: list[tuple[tuple[float, float, int], ...]] = [
    ((2.8878, 0.2, 600),),  # the default bank client at epsilon 8
    ((16.97, 0.2, 600),),  # the same at epsilon 1
    ((1.1, 0.05, 1200),),
    ((2.3, 0.5, 12), (1.4, 0.3, 30), (0.9, 0.05, 7)),  # three phases
]
DELTA = 4.14e-5


def _fresh() -> None:
    accountants.composed_epsilon.cache_clear()
    accountants._rdp_of_one_step.cache_clear()


def _row(history: tuple[tuple[float, float, int], ...]) -> str:
    _fresh()
    allowance = max(
        accountants.PRV_EPSILON_ERROR, accountants.rdp_epsilon(history, DELTA) / 1000
    )
    _fresh()
    started = time.perf_counter()
    ours = accountants.composed_epsilon(history, DELTA, "prv")
    ours_s = time.perf_counter() - started
    stock = PRVAccountant()
    stock.history = list(history)
    started = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):  # as composed_epsilon runs
        theirs = float(stock.get_epsilon(delta=DELTA, eps_error=allowance))
    theirs_s = time.perf_counter() - started
    shown = ", ".join(f"({s}, {q}, {n})" for s, q, n in history)
    same = "yes" if ours == theirs else f"NO ({theirs})"
    return (
        f"| {shown} | {ours_s:.3f} | {theirs_s:.3f} | {ours_s / theirs_s:.2f} "
        f"| {ours:.4f} | {same} |"
    )


def main() -> None:
    """Print the table."""
    print(f"delta {DELTA}; one fresh evaluation per cell")
    print("| history (noise, rate, steps) | fedmodel s | Opacus s | ratio ", end="")
    print("| epsilon | same float |")
    print("|---|---|---|---|---|---|")
    for history in HISTORIES:
        print(_row(history))
    _fresh()
    started = time.perf_counter()
    sigma = calibrate_noise(
        target_epsilon=8.0, delta=DELTA, sample_rate=0.2, steps=600, accountant="prv"
    )
    calls = accountants.composed_epsilon.cache_info().misses
    print(
        f"calibration at epsilon 8: noise {sigma:.4f} in "
        f"{time.perf_counter() - started:.2f} s ({calls} accountant calls)"
    )


if __name__ == "__main__":
    main()
