"""Torch's OpenMP threads spin briefly before they sleep in every fedmodel process.

libgomp prints the spin count it runs with under OMP_DISPLAY_ENV=verbose:
1000 where fedmodel set it, 300000 where nothing did.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def _spin_count(code: str, **named: str) -> str:
    """The GOMP_SPINCOUNT libgomp reports in a fresh interpreter running `code`.

    `named` are the libgomp settings the environment names (none by default).
    """
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    env.update(named)
    env["OMP_DISPLAY_ENV"] = "verbose"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return found.group(1)


@pytest.mark.parametrize("module", ["fedmodel.training.loops", "fedmodel.cli.main"])
def test_a_fedmodel_process_loads_torch_with_a_short_spin(module: str) -> None:
    assert _spin_count(f"import {module}, torch") == "1000"


def test_without_fedmodel_torch_threads_spin_long() -> None:
    # What the test above tells apart: libgomp's default when nothing sets it.
    assert _spin_count("import torch") == "300000"


@pytest.mark.parametrize(
    ("named", "count"),
    [
        ({"GOMP_SPINCOUNT": "5"}, "5"),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "0"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "30000000000"),
    ],
)
def test_a_setting_the_environment_names_wins(
    named: dict[str, str], count: str
) -> None:
    assert _spin_count("import fedmodel, torch", **named) == count
