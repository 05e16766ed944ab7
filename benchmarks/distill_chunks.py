"""Server distillation's step on whole batches and in length chunks, side by side.

Since this change a distillation step on a CPU runs its batch in chunks of
texts of about the same length (`data.tokenization.length_chunks`), adding
their gradients before the one update: the same batches, the same loss (a
mean over the batch's rows), on fewer padding tokens. Distils two copies of
one student on the same batches of the task's transfer texts and their
augmented copies, taking turns batch by batch (the same dropout seed for
both) so that both see the same machine load: one whole, as every step ran
before, one as `distill_step` runs it now. Prints the padded tokens each way,
each one's median seconds per batch and their ratio, the two students' mean
losses, and a whole default distillation's steps projected both ways. Speed
does not depend on the teacher's training, so without `--teacher-run` the
packaged model (an untrained head) is the teacher; `task=hospital` and other
overrides choose the task.

    .venv/bin/python benchmarks/distill_chunks.py [--teacher-run DIR] [--batches N]
        [overrides ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill import finished_run

from fedmodel.config import compose_config
from fedmodel.errors import FedmodelError

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.


def main() -> None:
    """Time both ways batch by batch in turn, then project whole distillations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-run", type=Path)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f"--batches must be at least 1, not {args.batches}")
    if args.teacher_run is not None:
        finished_run(args.teacher_run, "--teacher-run")
        if args.overrides:
            parser.error("overrides choose the task without --teacher-run only")
    try:
        compose_config(args.overrides)
    except FedmodelError as exc:
        parser.error(str(exc))
    from distill_chunk_turns import time_whole_and_chunked

    time_whole_and_chunked(args.teacher_run, args.overrides, batches=args.batches)


if __name__ == "__main__":
    main()
