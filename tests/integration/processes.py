"""Starting and stopping the Flower processes an integration test owns.

A test keeps the `Popen` of everything it starts and stops each one by its PID
together with its descendants (Flower's SuperExec and the app processes it
spawns), also when the test fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

VENV_BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Block until something accepts connections on `port`, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"process {process.args} exited with {process.returncode}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listened on port {port} after {timeout} s")


def start(
    command: list[str], *, env: dict[str, str], log: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start `command` with its output in `log`."""
    with log.open("wb") as handle:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT
        )


def stop(processes: list[psutil.Process]) -> None:
    """SIGTERM each process by its PID; SIGKILL those still alive after 10 s."""
    for signal in ("terminate", "kill"):
        for proc in processes:
            try:
                getattr(proc, signal)()
            except psutil.NoSuchProcess:
                continue
        _, processes = psutil.wait_procs(processes, timeout=10)


def stop_started(started: list[subprocess.Popen[bytes]], *, flwr_homes: Path) -> None:
    """Stop every started process and all its descendants, by PID.

    A process that exited early can leave children behind with a new parent;
    they still carry a FLWR_HOME under `flwr_homes`, which finds them.
    """
    tree: dict[int, psutil.Process] = {}
    for popen in started:
        try:
            root = psutil.Process(popen.pid)
            tree.update((p.pid, p) for p in [root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            continue
    tree.update((p.pid, p) for p in _with_flwr_home_under(flwr_homes))
    stop(list(tree.values()))
    for popen in started:
        popen.wait(timeout=10)


def _with_flwr_home_under(directory: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            home = proc.environ().get("FLWR_HOME", "")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if proc.pid != os.getpid() and home.startswith(f"{directory}{os.sep}"):
            found.append(proc)
    return found


def flower_env(flwr_home: Path) -> dict[str, str]:
    """This venv's executables first on PATH, offline, no dependency installs."""
    return {
        **os.environ,
        "FLWR_HOME": str(flwr_home),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }
