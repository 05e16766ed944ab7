"""A simulation leaves no process behind, even one orphaned while it ran.

Ray's workers outlive their raylet for a moment; once orphaned they are no
longer anyone's child. The stand-in here double-forks the same way.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from fedmodel.federation.simulation import _stop_leftover_processes

# Starts a grandchild that sleeps, prints its pid and exits, so the grandchild
# is orphaned at once.
ORPHAN = """
import subprocess, sys
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
print(child.pid, flush=True)
"""


def test_an_orphaned_process_started_during_the_run_is_stopped() -> None:
    with _stop_leftover_processes(grace_seconds=5.0):
        started = subprocess.run(
            [sys.executable, "-c", ORPHAN], capture_output=True, text=True, check=True
        )
        orphan = psutil.Process(int(started.stdout))
        assert orphan.is_running()
        assert psutil.Process().pid not in {p.pid for p in orphan.parents()}
    time.sleep(0.2)
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE


def test_a_process_started_before_the_run_is_left_alone() -> None:
    earlier = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with _stop_leftover_processes(grace_seconds=1.0):
            pass
        assert earlier.poll() is None
    finally:
        earlier.kill()
        earlier.wait()
