"""What a site's next round costs as its ledger composes federation after federation.

A deployed site keeps one privacy ledger across federations, and each round
evaluates its whole history twice: on opening it (`ledger_check`) and on
charging. The ledger here is a 100,000-record hospital's at the default
epsilon 8 (batch 512 and 12 local epochs by the budget rule, 10 rounds a
federation, noise calibrated with PRV), its file growing by `--growth` before
each federation: a new sample rate, so a new history entry. Each federation
is charged as one entry of its rounds' steps, the history a charge per round
merges to. After each federation, in a fresh interpreter as a site runs each
round: the next round's wall time, peak memory and epsilon, and which
accountant's figure it is; with `--prv`, PRV's own epsilon of the history
too (`prv_epsilon_for`: what fedmodel stated past PRV_MAX_STEPS before it
stated RDP's there), which takes up to a minute and 2 GB each past the limit.

    .venv/bin/python benchmarks/site_ledger_growth.py [--federations 9] \
        [--growth 1.02] [--prv] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Opacus is imported where it is used, after the arguments are checked.

RECORDS, BATCH, EPOCHS, ROUNDS, TARGET = 100_000, 512, 12, 10, 8.0
PROBE = """
import sys, time
from pathlib import Path
from fedmodel.privacy.accountants import stating_accountant
from fedmodel.privacy.calibration import prv_epsilon_for
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_record import read_record

path, steps, what = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
stored = read_record(path)
started = time.perf_counter()
if what == "round":
    plan = PrivacyPlan(
        target_epsilon=stored.target_epsilon, delta=stored.delta,
        sample_rate=stored.sample_rate, steps_per_round=steps, planned_rounds=1,
        noise_multiplier=stored.noise_multiplier, accountant=stored.accountant,
    )
    ledger = PrivacyLedger.open(
        path, client_id=stored.client_id, plan=plan,
        data_fingerprint=stored.data_fingerprint,
    )
    epsilon = ledger.charge(round_number=0, steps=steps)
    by = stating_accountant(ledger.accountant, ledger.steps)
else:
    epsilon, by = prv_epsilon_for(stored.history, delta=stored.delta), "prv"
took = time.perf_counter() - started
# This process's own peak (ru_maxrss would report the parent's where larger).
status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
peak = int(status.split()[0]) / 1e6
print(f"{took:.1f} s, {peak:.2f} GB, epsilon {epsilon:.4f} ({by})")
"""


def _measured(path: Path, *, steps: int, what: str) -> str:
    """The probe's line for a copy of the ledger at `path`, in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        copy.write_bytes(path.read_bytes())
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(copy), str(steps), what],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1]}"
    return done.stdout.strip()


def _grow(folder: Path, *, federations: int, growth: float, prv: bool) -> None:
    from fedmodel.privacy.client_plan import plan_privacy
    from fedmodel.privacy.ledger import PrivacyLedger

    path = folder / "privacy_ledger.json"
    first = plan_privacy(
        target_epsilon=TARGET,
        delta=None,
        num_records=RECORDS,
        batch_size=BATCH,
        local_epochs=EPOCHS,
        planned_rounds=ROUNDS,
        accountant="prv",
    )
    print(f"noise {first.noise_multiplier:.5f}, delta {first.delta:g}")
    for federation in range(1, federations + 1):
        records = int(RECORDS * growth ** (federation - 1))
        plan = plan_privacy(
            target_epsilon=50.0,  # a later federation's target, above the spend
            delta=first.delta,
            num_records=records,
            batch_size=BATCH,
            local_epochs=EPOCHS,
            planned_rounds=ROUNDS,
            accountant="prv",
            noise_multiplier=first.noise_multiplier,  # the ledger keeps it
        )
        ledger = PrivacyLedger.open(
            path, client_id="0", plan=plan, data_fingerprint=str(records)
        )
        spent = ledger.charge(
            round_number=federation, steps=ROUNDS * plan.steps_per_round
        )
        row = (
            f"federation {federation}: {records} records, {ledger.steps} steps "
            f"in {len(ledger.history)} entries, epsilon {spent:.4f}; next round "
            f"{_measured(path, steps=plan.steps_per_round, what='round')}"
        )
        if prv:
            row += f"; PRV's own {_measured(path, steps=0, what='prv')}"
        print(row, flush=True)


def main() -> None:
    """Build the ledger and print a line per federation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--federations", type=int, default=9)
    parser.add_argument("--growth", type=float, default=1.02)
    parser.add_argument("--prv", action="store_true")
    parser.add_argument(
        "--state-dir", type=Path, help="keep the ledger here (for ledger show)"
    )
    args = parser.parse_args()
    if args.federations < 1 or not args.growth >= 1.0:
        parser.error("--federations must be >= 1 and --growth >= 1")
    if args.state_dir is not None and (args.state_dir / "privacy_ledger.json").exists():
        parser.error(f"--state-dir {args.state_dir} already holds a ledger")
    with tempfile.TemporaryDirectory() as folder:
        state_dir = Path(folder) if args.state_dir is None else args.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        _grow(
            state_dir,
            federations=args.federations,
            growth=args.growth,
            prv=args.prv,
        )


if __name__ == "__main__":
    main()
