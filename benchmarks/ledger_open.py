"""How long opening a stored privacy ledger takes, with its history checked.

A deployed site opens its ledger in a fresh process for every message. On
opening, the ledger's history is evaluated once and compared with the epsilon
its last charge stored (`fedmodel.privacy.ledger_check`); that evaluation is
also the ledger's epsilon, so asking for it afterwards costs nothing. The
table compares this with evaluating every round's epsilon, the alternative
that would also check each stored round. The ledger is charged like a client
of 2000 records, batch 32, one local epoch a round, with noise calibrated for
epsilon 8 over the rounds; each timing runs in a fresh interpreter.

    .venv/bin/python benchmarks/ledger_open.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

CLIENT = "bench"
PROBE = """
import sys, time
from pathlib import Path
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_record import read_record

path = Path(sys.argv[1])
stored = read_record(path)
plan = PrivacyPlan(
    target_epsilon=stored.target_epsilon, delta=stored.delta,
    sample_rate=stored.sample_rate, steps_per_round=1, planned_rounds=1,
    noise_multiplier=stored.noise_multiplier, accountant=stored.accountant,
)
started = time.perf_counter()
ledger = PrivacyLedger.open(
    path, client_id=stored.client_id, plan=plan,
    data_fingerprint=stored.data_fingerprint,
)
opened = time.perf_counter() - started
started = time.perf_counter()
ledger.epsilon
then = time.perf_counter() - started
started = time.perf_counter()
for end in range(1, len(stored.history) + 1):
    epsilon_for(stored.history[:end], delta=stored.delta, accountant=stored.accountant)
every = time.perf_counter() - started
print(f"{opened:.3f} {then:.3f} {every:.2f} {ledger.epsilon:.4f}")
"""


def _charged(path: Path, *, accountant: str, rounds: int) -> None:
    from fedmodel.privacy.client_plan import plan_privacy
    from fedmodel.privacy.ledger import PrivacyLedger

    plan = plan_privacy(
        target_epsilon=8.0,
        delta=None,
        num_records=2000,
        batch_size=32,
        local_epochs=1,
        planned_rounds=rounds,
        accountant=accountant,
    )
    ledger = PrivacyLedger.open(
        path, client_id=CLIENT, plan=plan, data_fingerprint="bench"
    )
    for number in range(1, rounds + 1):
        ledger.charge(round_number=number, steps=plan.steps_per_round)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(
        "| accountant | rounds | open s | epsilon after open s "
        "| every round's epsilon s | epsilon |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for accountant in ("prv", "rdp"):
            path = Path(folder) / f"{accountant}.json"
            _charged(path, accountant=accountant, rounds=args.rounds)
            done = subprocess.run(
                [sys.executable, "-c", PROBE, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            opened, then, every, epsilon = done.stdout.split()
            print(
                f"| {accountant} | {args.rounds} | {opened} | {then} | {every} "
                f"| {epsilon} |"
            )


if __name__ == "__main__":
    main()
