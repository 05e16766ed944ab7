"""Server distillation in float32 and under bfloat16 autocast, side by side.

Distils two copies of one student on the same batches of the task's transfer
texts and their augmented copies, taking turns batch by batch (the same
dropout masks for both, the one going first alternating) so that both see
the same machine load: one with `distill.precision=fp32`, one with `bf16`
(`distill_step`: the forward pass and loss under
`torch.autocast("cpu", dtype=torch.bfloat16)`; the weights, their gradients
and AdamW stay float32). Prints each one's
median seconds per step, their ratio and mean loss. Then the teacher labels
batches spread over the length-ordered texts both ways in turn, as
`teacher_targets` does, and it prints the time of each, how many texts get
the same label and how far the logits and pooled vectors move. Speed does not
depend on the teacher's training, so without `--teacher-run` the packaged
model (an untrained head) is the teacher of the default `make demo` config.
It prints figures only; the ratios are what carries over on a shared machine.

    .venv/bin/python benchmarks/distill_bf16.py [--teacher-run DIR] [--batches N]
        [--label-batches N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill import finished_run

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.


def main() -> None:
    """Time both ways step by step in turn, then the teacher's labelling."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-run", type=Path)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--label-batches", type=int, default=20)
    args = parser.parse_args()
    if args.teacher_run is not None:
        finished_run(args.teacher_run, "--teacher-run")
    from distill_bf16_turns import time_both_ways

    time_both_ways(
        args.teacher_run, batches=args.batches, label_batches=args.label_batches
    )


if __name__ == "__main__":
    main()
