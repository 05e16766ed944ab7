"""A simulation leaves no process behind, even one orphaned while it ran.

Ray's workers outlive their raylet for a moment; once orphaned they are no
longer anyone's child. The stand-in here double-forks the same way.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fedmodel.federation.leftovers import (
    RUN_MARK,
    _kernel_thread,
    stop_leftover_processes,
)

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]
NEXT_PID = Path("/proc/sys/kernel/ns_last_pid")

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

# Started before the run, so it carries no mark: reads the run's mark, starts a
# marked child with it, and never reaps that child (as a parent that is busy,
# or a container's init that reaps only now and then).
NON_REAPING_PARENT = f"""
import os, subprocess, sys, time
mark = sys.stdin.readline().strip()
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"],
    env={{**os.environ, {RUN_MARK!r}: mark}},
)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_an_orphaned_process_started_during_the_run_is_stopped() -> None:
    with stop_leftover_processes(grace_seconds=5.0):
        started = subprocess.run(
            [sys.executable, "-c", ORPHAN], capture_output=True, text=True, check=True
        )
        orphan = psutil.Process(int(started.stdout))
        assert orphan.is_running()
        assert psutil.Process().pid not in {p.pid for p in orphan.parents()}
    time.sleep(0.2)
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE


def test_a_process_started_before_the_run_is_left_alone() -> None:
    earlier = subprocess.Popen(SLEEP)
    try:
        with stop_leftover_processes(grace_seconds=1.0):
            pass
        assert earlier.poll() is None
    finally:
        earlier.kill()
        earlier.wait()


def test_a_process_that_exits_on_sigterm_is_not_waited_for_until_reaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Once it has exited it is stopped, though its parent has not reaped it:
    # waiting for that took the grace period, twice, and then reported a
    # process that had ignored SIGTERM.
    parent = subprocess.Popen(
        [sys.executable, "-c", NON_REAPING_PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdin is not None and parent.stdout is not None
    try:
        with caplog.at_level(logging.DEBUG, logger="fedmodel"):
            with stop_leftover_processes(grace_seconds=2.0):
                parent.stdin.write(os.environ[RUN_MARK] + "\n")
                parent.stdin.flush()
                child = psutil.Process(int(parent.stdout.readline()))
        assert child.status() == psutil.STATUS_ZOMBIE
        assert parent.poll() is None  # unmarked: left alone
        assert "ignored SIGTERM" not in caplog.text
    finally:
        parent.kill()
        parent.wait()


def test_a_marked_process_on_a_reused_pid_is_stopped() -> None:
    # psutil.process_iter keeps the Process it made for a pid; once the pid is
    # reused, that Process reads the new process's mark but will not signal it.
    gone = subprocess.Popen(SLEEP)
    list(psutil.process_iter())
    gone.kill()
    gone.wait()
    time.sleep(0.05)  # a process is its pid and its start time, in 10 ms ticks
    with stop_leftover_processes(grace_seconds=1.0):
        child = _start_on_pid(gone.pid)
    try:
        assert child.poll() is not None  # the stop waited for it to exit
    finally:
        child.kill()
        child.wait()


def _start_on_pid(pid: int) -> subprocess.Popen[bytes]:
    """SLEEP started on `pid` (Linux's next-pid file; root in its namespace)."""
    for _ in range(5):
        try:
            NEXT_PID.write_text(str(pid - 1))
        except OSError:
            pytest.skip(f"cannot choose the next pid here ({NEXT_PID} is not writable)")
        started = subprocess.Popen(SLEEP)
        if started.pid == pid:
            return started
        started.kill()  # another process took the pid first
        started.wait()
    pytest.skip(f"pid {pid} was taken by other processes five times")


def test_a_process_still_inside_exec_is_read_again_and_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Popen returns once the child's exec has begun; until the kernel has laid
    # out the new program, /proc/PID/environ reads empty (often, on a busy
    # machine), so a scan at that moment saw no mark and left the child running.
    read_environ = psutil.Process.environ
    empty_reads = 2
    child_pid = -1

    def environ_while_exec_finishes(process: psutil.Process) -> dict[str, str]:
        nonlocal empty_reads
        if process.pid == child_pid and empty_reads > 0:
            empty_reads -= 1
            return {}
        return read_environ(process)

    monkeypatch.setattr(psutil.Process, "environ", environ_while_exec_finishes)
    with stop_leftover_processes(grace_seconds=1.0):
        child = subprocess.Popen(SLEEP)
        child_pid = child.pid
    try:
        assert empty_reads == 0
        assert child.poll() is not None  # found on a later read, and stopped
    finally:
        child.kill()
        child.wait()


def test_a_process_whose_environment_stays_empty_is_waited_for_only_briefly() -> None:
    # A process started with no environment at all is read again for at most
    # a second, then left alone: it carries no mark.
    with stop_leftover_processes(grace_seconds=1.0):
        bare = subprocess.Popen(SLEEP, env={})
        time.sleep(0.2)
        began = time.monotonic()
    waited = time.monotonic() - began
    try:
        assert bare.poll() is None
        assert waited < 3.0
    finally:
        bare.kill()
        bare.wait()


def test_kernel_threads_are_told_from_programs() -> None:
    # Kernel threads have no environment either, and come and go all the time.
    assert not _kernel_thread(os.getpid())
    kthreadd = Path("/proc/2/comm")
    if not kthreadd.exists() or kthreadd.read_text().strip() != "kthreadd":
        pytest.skip("the kernel's threads are not visible here (a PID namespace)")
    assert _kernel_thread(2)
