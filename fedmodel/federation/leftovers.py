"""The processes a simulation leaves behind, found by a mark and stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

# Set in the environment of every process a simulation starts (Ray's own and
# its workers inherit it), so that those left at the end can be found by it.
RUN_MARK = "FEDMODEL_SIMULATION_MARK"
# How long a process that has just exec'd may show an empty environment.
EXEC_WAIT_SECONDS = 1.0
# psutil's start times can read up to this much early: the boot time it adds
# to a process's start is whole seconds, the start itself 10 ms clock ticks.
START_TIME_SLACK = 1.1
# Linux's task flag for a kernel thread (include/linux/sched.h).
PF_KTHREAD = 0x00200000


@contextlib.contextmanager
def stop_leftover_processes(grace_seconds: float = 5.0) -> Iterator[None]:
    """Stop every process the simulation started before the command returns.

    Flower shuts Ray down when the run ends, but Ray's workers go on for
    seconds after, some of them orphaned once their raylet has gone. Each
    process started during the run inherits a mark unique to the run in its
    environment; those still running at the end are asked to stop, then
    killed. A Ray cluster joined by address starts its workers from its own
    environment, so they carry no mark and are left alone.
    """
    mark = secrets.token_hex(16)
    before = os.environ.get(RUN_MARK)
    started = time.time()
    os.environ[RUN_MARK] = mark
    try:
        yield
    finally:
        if before is None:
            del os.environ[RUN_MARK]
        else:
            os.environ[RUN_MARK] = before
        _stop_marked(mark, started, grace_seconds)


def _stop_marked(mark: str, started: float, grace_seconds: float) -> None:
    alive = _marked_processes(mark, started)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    alive = _still_running(alive, timeout=grace_seconds)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    _still_running(alive, timeout=grace_seconds)
    if alive:
        log.debug("killed %d simulation process(es) that ignored SIGTERM", len(alive))


def _still_running(
    processes: list[psutil.Process], *, timeout: float
) -> list[psutil.Process]:
    """Those of `processes` still running once they end or `timeout` s pass.

    A process that has exited has ended, reaped or not: an orphaned Ray
    worker's zombie waits for the machine's init, which in some containers
    reaps only every few seconds (psutil.wait_procs waited for that).
    """
    deadline = time.monotonic() + timeout
    while True:
        # Reaps those that are this process's own children.
        _, processes = psutil.wait_procs(processes, timeout=0)
        processes = [p for p in processes if _running(p)]
        if not processes or time.monotonic() >= deadline:
            return processes
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _marked_processes(mark: str, started: float) -> list[psutil.Process]:
    """The running processes whose environment carries `mark`.

    A process that is still inside exec (its parent's Popen has returned, its
    new program has not begun) shows an empty environment for a moment, often
    on a busy machine; one started since `started` that reads empty is read
    again until its environment appears or EXEC_WAIT_SECONDS pass.
    """
    deadline = time.monotonic() + EXEC_WAIT_SECONDS
    found: list[psutil.Process] = []
    to_read = [p for p in running_processes() if p.pid != os.getpid()]
    while True:
        unread = []
        for process in to_read:
            with contextlib.suppress(psutil.Error):
                environ = process.environ()
                if environ.get(RUN_MARK) == mark:
                    found.append(process)
                elif not environ and _started_since(process, started):
                    unread.append(process)
        if not unread or time.monotonic() >= deadline:
            return found
        time.sleep(0.01)
        to_read = unread


def _started_since(process: psutil.Process, started: float) -> bool:
    """Whether `process` is a running program that began after `started`.

    `started` is a time.time(). Kernel threads have no environment at all and
    come and go all the time, so they are never waited for.
    """
    return (
        _running(process)
        and not _kernel_thread(process.pid)
        and process.create_time() >= started - START_TIME_SLACK
    )


def _kernel_thread(pid: int) -> bool:
    """Whether the kernel's flags for `pid` mark it a kernel thread."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The flags are the seventh field after the command name's closing ")".
    flags = int(stat.rsplit(")", 1)[1].split()[6])
    return bool(flags & PF_KTHREAD)


def running_processes() -> Iterator[psutil.Process]:
    """Every process running now, each as a psutil.Process made for it now.

    psutil.process_iter keeps the Process it made for a pid across calls. Once
    that pid is reused, the kept one reads the new process's environment but
    refuses to signal it, so a process found through it could not be stopped.
    """
    for pid in psutil.pids():
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        yield process
