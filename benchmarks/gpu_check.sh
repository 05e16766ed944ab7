#!/usr/bin/env bash
# gpu_check.sh: time DP-SGD on the GPU against the CPU.
#
# Runs a short DP simulation with device=cuda and the same one with device=cpu,
# in one run, and prints each one's training round in seconds per DP-SGD step
# (the round's wall time over the steps a client took; the clients train side
# by side) and their ratio. Where torch sees no CUDA device it says so and
# exits 0.
#
# Usage: bash benchmarks/gpu_check.sh [-h|--help] [extra Hydra overrides...]
#   e.g. bash benchmarks/gpu_check.sh task=hospital num_rounds=2
#
# Needs: fedmodel installed in .venv (or PYTHON=/path/to/python), a torch
# build with CUDA and a visible CUDA device; the MiniLM encoder and the data
# come from the packages fedmodel installs (the script runs offline).
#
# Defaults: the shipped MiniLM encoder, finetune=lora (the encoder's forward
# and backward passes are what a GPU speeds up), 2 clients, 1 round, 1 local
# epoch, DP at epsilon 8, each client reserving half a GPU in Ray; the
# overrides given are added after these and win over them.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  # The comment block above, without its "# " marks.
  sed -n '2,/^set -euo pipefail$/{/^#/{s/^# \{0,1\}//;p}}' "$0"
  exit 0
fi
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false RAY_USAGE_STATS_ENABLED=0 FLWR_TELEMETRY_ENABLED=0

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to torch on this machine; nothing to compare (exit 0)."
  exit 0
fi

"$PYTHON" - "$@" <<'PY'
"""Time DP-SGD steps of the same simulation on the GPU and on the CPU."""
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from fedmodel.config import compose_config
from fedmodel.federation.simulation import simulate
from fedmodel.run.console import setup_logging
from fedmodel.run.metrics import read_rounds

BASE = [
    "model=minilm",
    "finetune=lora",
    "num_clients=2",
    "num_rounds=1",
    "finetune.local_epochs=1",
    "task.max_train_examples=1200",
    "task.max_test_examples=300",
    "privacy.target_epsilon=8",
    "distill=off",
    *sys.argv[1:],
]


def seconds_per_step(device: str, gpus_per_client: float) -> tuple[float, float]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"gpu-check-{device}-"))
    started = time.perf_counter()
    summary = simulate(
        compose_config(
            [*BASE, f"device={device}", f"federation.gpus_per_client={gpus_per_client}"]
        ),
        run_dir=run_dir,
    )
    wall = time.perf_counter() - started
    assert summary["rounds_completed"] == 1
    steps = [
        sum(r["steps"] for r in json.loads(ledger.read_text())["rounds"])
        for ledger in run_dir.glob("clients/*/privacy_ledger.json")
    ]
    round_seconds = float(read_rounds(run_dir)[0]["seconds"])
    return round_seconds / max(sum(steps) / len(steps), 1), wall


setup_logging()
print(f"GPU: {torch.cuda.get_device_name(0)}; overrides: {' '.join(BASE)}")
cuda_step, cuda_wall = seconds_per_step("cuda", 0.5)
cpu_step, cpu_wall = seconds_per_step("cpu", 0.0)
print("| device | round s per DP-SGD step | run wall s |")
print("|---|---|---|")
print(f"| cuda | {cuda_step:.4f} | {cuda_wall:.1f} |")
print(f"| cpu | {cpu_step:.4f} | {cpu_wall:.1f} |")
print(f"cpu / cuda step time: {cpu_step / cuda_step:.1f}x")
PY
