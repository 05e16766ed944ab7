"""Two SuperNodes on one machine and one --runtime-port: the second is refused.

docs/deployment.md (site operator, step 3) says a port another process
listens on stops `fedmodel supernode` with one line. Without the check,
Flower's SuperNode started, failed to bind and ended in a traceback
(`RuntimeError: SuperNode Runtime HTTP API failed to start.`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port
from tests.integration.loopback import stop

pytestmark = pytest.mark.integration


def _supernode(directory: Path, name: str, runtime_port: int) -> list[str]:
    data = directory / f"{name}.csv"
    data.write_text("text,label\nhello,a\nbye,b\n")
    # `python -m fedmodel`: this interpreter's fedmodel, whichever is on its path.
    return [
        sys.executable,
        "-m",
        "fedmodel",
        "supernode",
        # Nothing listens there: the first SuperNode keeps retrying, runtime
        # API up, which is all this test needs of it.
        f"--superlink=127.0.0.1:{free_port()}",
        "--insecure",
        "--site-id=0",
        f"--data-file={data}",
        f"--state-dir={directory / f'state-{name}'}",
        "--max-epsilon=3",
        # The file's few records would take a weak default delta, and the
        # launch's line saying so would join the one error line checked below.
        "--delta=1e-5",
        f"--runtime-port={runtime_port}",
    ]


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the first SuperNode exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the first SuperNode never listened on {port}")


def test_a_second_supernode_on_a_held_runtime_port_gets_one_line(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home")}
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(
            _supernode(tmp_path, "first", port),
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        _wait_until_listening(first, port)
        second = subprocess.run(
            _supernode(tmp_path, "second", port),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        root = psutil.Process(first.pid)
        stop([root, *root.children(recursive=True)])
        first.wait(timeout=10)
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    assert second.stderr.strip() == (
        f"fedmodel supernode: error: --runtime-port {port}: another process "
        f"already listens on 127.0.0.1:{port}; every SuperNode on a machine "
        "needs a --runtime-port of its own: give one that no other process "
        "listens on"
    )
    assert not (tmp_path / "state-second").exists()
