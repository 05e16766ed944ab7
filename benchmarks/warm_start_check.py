"""Does checking the warm start against the label-name start keep the better head?

The server fits the warm start on 80% of its labelled records and keeps it
only if its loss on the other 20% is not above the label-name start's
(`checked_warm_start` in `fedmodel/training/warm_start.py`). This draws random
server files of a few sizes from bank's and hospital's transfer splits, runs
the server's own code on each (`public_start` with and without the held-out
part), and judges the heads on records no choice saw: the union of the
clients' local validation splits (10% of each client's records, as in
`head_features.py`), never the test split. Usage:

    .venv/bin/python benchmarks/warm_start_check.py [--scenarios bank hospital]
        [--sizes 10 20 40 80 0] [--draws 10] [--rules loss calibrated ...]
        [--folds 5]

Size 0 is the whole transfer split. Per size it prints the mean judged
accuracy of the label-name start, of the warm start taken unchecked, and of
the head the check keeps, with how often the check kept the warm start and
how often the kept head was below the label-name start on the judged records.
Each `--rules` entry is a way to compare the two heads on the held-out
records, applied to the same two fits: its line gives the mean judged
accuracy of the heads it keeps, how often it kept the warm start and how
often its head was below the label-name start. "loss" is the mean
cross-entropy; "calibrated" the same after each head's logits are divided by
the temperature (0.25 to 4) that fits the held-out records best, so that an
overconfident head is not punished for its scale alone; "accuracy" is the
accuracy, the loss breaking ties; "brier" the Brier score, a proper score
that, unlike the log loss, is bounded for a confident mistake (all keep the
warm start on a tie). With `--folds K` each rule is also applied ("/cv") to
every server record rather than the 20% alone: each record the warm start is
fitted on is scored by a warm start fitted, as the server's is, on the other
K-1 folds of those records (cross-validation), so that a small file's
comparison rests on all its records.
"""

from __future__ import annotations

import argparse
import logging

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

# The ways to compare the two heads (`warm_start_draws.RULES`), in order.
RULE_NAMES = ("loss", "calibrated", "accuracy", "brier")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["bank", "hospital"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 40, 80, 0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument(
        "--rules", nargs="*", choices=RULE_NAMES, default=list(RULE_NAMES)
    )
    parser.add_argument("--folds", type=int, default=0)
    args = parser.parse_args()
    from warm_start_draws import RULES, run_scenario

    assert tuple(RULES) == RULE_NAMES, "warm_start_draws.RULES and --rules' choices"

    logging.basicConfig(level=logging.ERROR)
    for task in args.scenarios:
        run_scenario(task, args.sizes, args.draws, args.rules, args.folds)


if __name__ == "__main__":
    main()
