"""Does moving the encoder after the DP head pay at a generous budget?

Item 5 of the strict-budget work: a head-then-encoder schedule inside one
plan, against head-only at the same budget. Built on the pieces of
`head_fedavg.py` and `head_features.py` (cached MiniLM features, the run's
`private_training`, `train_epochs`, FedAvg weighted by record count; 4
clients, Dirichlet 0.5) and, for the encoder phase, `encoder_fedavg.py`: the
run's own LoRA / full fine-tuning (`finetune=lora` or `finetune=full`: its
batch, optimizer, learning rate, clip and clipping method) on each client's
texts.

- `head`: the rule's head settings for all `--rounds` rounds, one plan per
  client over those rounds (what `fedmodel simulate` runs).
- `head+lora`, `head+full`: the head for `--rounds - --encoder-rounds` rounds,
  then the encoder mode for `--encoder-rounds` rounds from that head. Each
  client has one noise multiplier for both phases, the smallest whose composed
  history [(sigma, q_head, T_head), (sigma, q_encoder, T_encoder)] spends at
  most the target with the run's accountant (`composed_epsilon`,
  `smallest_noise`). The script checks that spend before training.

All arms start from the same public start (label names, then the warm start
on the task's transfer split). The union of the clients' local validation
splits and the test split are both reported; neither chooses anything.

    .venv/bin/python benchmarks/head_then_encoder.py --modes lora full --seeds 42
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from head_candidates import CACHE

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bank")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument(
        "--modes", nargs="+", choices=["lora", "full"], default=["lora"]
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--encoder-rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=CACHE / "head_then_encoder.jsonl")
    args = parser.parse_args()
    if not 1 <= args.encoder_rounds < args.rounds:
        parser.error("--encoder-rounds must be at least 1 and below --rounds")
    import torch
    from head_then_encoder_arms import run_seed

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        run_seed(args, seed)


if __name__ == "__main__":
    main()
