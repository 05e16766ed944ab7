"""fedmodel: federated, differentially private fine-tuning of a shared BERT."""

import os
from importlib.metadata import PackageNotFoundError, version

# At the end of each parallel op, torch's OpenMP threads (libgomp) spin
# 300,000 times waiting for each other before they sleep. Where other jobs
# want the cores too, a spinning thread holds the core the thread it waits for
# needs, and a head-mode step or a one-text forward pass takes 4 to 5 times as
# long. 1,000 spins (libgomp's own count when it knows it runs more threads
# than cores) recovers most of that, and on a quiet machine costs at most
# 0.2 ms on a head-mode step (benchmarks/omp_wait.py, docs/deployment.md).
# libgomp reads it when torch loads it, which no fedmodel module does before
# this; a count or policy the environment names wins.
if not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & os.environ.keys():
    os.environ["GOMP_SPINCOUNT"] = "1000"

try:
    # One source: the version in pyproject.toml, as installed.
    __version__ = version("fedmodel")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
