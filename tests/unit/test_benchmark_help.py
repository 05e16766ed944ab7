"""Every benchmark that takes arguments answers `--help` before importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
HEAVY = ("torch", "transformers", "flwr", "opacus", "onnxruntime", "datasets", "ray")
SCRIPTS = sorted(
    p for p in BENCHMARKS.glob("*.py") if "ArgumentParser(" in p.read_text()
)


def test_the_scripts_are_found() -> None:
    assert len(SCRIPTS) >= 15, [p.name for p in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_answers_without_the_heavy_packages(script: Path) -> None:
    # Before: most imported torch, transformers or Flower first, so `--help`
    # and a bad argument took 5-10 s (distill.py's wrong folder about 29 s).
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = sorted(imported & set(HEAVY))
    assert not heavy, f"{script.name} --help imported {heavy}"
