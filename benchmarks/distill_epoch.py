"""Server distillation as it was and as it is now, side by side.

Two changes that leave what distillation computes bit for bit the same:
- the student's AdamW runs in its multi-tensor (foreach) form
  (`distill.server.server_optimizer`), where PyTorch picks the per-tensor
  loop on a CPU;
- the teacher labels the test split once for the agreement before and after
  distillation, where it ran over it for each.

Distils two copies of one student on the same batches of the task's transfer
texts and their augmented copies, taking turns batch by batch (the same
dropout masks for both) so that both see the same machine load: one with the
per-tensor loop, one with `server_optimizer`. Prints each one's median
seconds per batch and whether their weights are still equal, times one pass
of the teacher and of the student over the test split, and projects a whole
default distillation both ways from these parts. Speed does not depend on the
teacher's training, so without `--teacher-run` the packaged model (an
untrained head) is the teacher of the default `make demo` config.

    .venv/bin/python benchmarks/distill_epoch.py [--teacher-run DIR] [--batches N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill import finished_run

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.


def main() -> None:
    """Time both ways batch by batch in turn, then project whole distillations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-run", type=Path)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    if args.teacher_run is not None:
        finished_run(args.teacher_run, "--teacher-run")
    from distill_epoch_turns import time_both_ways

    time_both_ways(args.teacher_run, batches=args.batches)


if __name__ == "__main__":
    main()
