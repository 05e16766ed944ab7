"""A federation on loopback: the Flower processes a test owns.

`Loopback` plays both operators on one machine through the commands the README
gives them (`fedmodel certs`, `fedmodel superlink`, `flwr supernode register`,
`fedmodel supernode`, `fedmodel flwr-app`, `flwr run`). It keeps the `Popen` of
everything it starts; `stop` ends each one by its PID together with its
descendants (Flower's SuperExec and the app processes it spawns), also when a
test fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from fedmodel.federation.leftovers import running_processes
from tests.conftest import FEW_LATENCY_CALLS, free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)
FEDMODEL = f"{VENV_BIN}/fedmodel"
# A folder whose sitecustomize.py gives a SuperNode a 10 s heartbeat.
SHORT_HEARTBEAT = Path(__file__).resolve().parent / "short_heartbeat"
# SuperLink starts to try, each on a new free port, before a test fails.
SUPERLINK_ATTEMPTS = 3


def listening_ports(pid: int) -> set[int]:
    """TCP ports that process `pid` or one of its descendants listens on."""
    ports: set[int] = set()
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return ports
    for proc in tree:
        try:
            connections = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ports.update(
            c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN
        )
    return ports


def stop(processes: list[psutil.Process], *, grace: float = 10) -> None:
    """SIGTERM each process by its PID; SIGKILL those still alive after `grace` s."""
    for method, timeout in (("terminate", grace), ("kill", 10)):
        for proc in processes:
            try:
                getattr(proc, method)()
            except psutil.NoSuchProcess:
                continue
        _, processes = psutil.wait_procs(processes, timeout=timeout)


def with_flwr_home(accept: Callable[[str], bool]) -> list[psutil.Process]:
    """Other processes whose FLWR_HOME `accept` takes: ones a test started."""
    found = []
    for proc in running_processes():
        try:
            home = proc.environ().get("FLWR_HOME")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if proc.pid != os.getpid() and home is not None and accept(home):
            found.append(proc)
    return found


def flower_env(flwr_home: Path, bin_dir: Path | str = VENV_BIN) -> dict[str, str]:
    """A venv's executables first on PATH, no dependency installs."""
    inherited = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {
        **inherited,
        "FLWR_HOME": str(flwr_home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }


class Loopback:
    """A SuperLink and SuperNodes on 127.0.0.1, TLS and node authentication on."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.certs = directory / "certs"
        self.keys = directory / "keys"
        self.port = free_port()
        self.env = flower_env(directory / "operator-flwr-home")
        self.started: list[subprocess.Popen[bytes]] = []

    def start_superlink(self) -> None:
        """Certificates, the SuperLink, and the operator's `flwr` connection."""
        self.command(
            FEDMODEL,
            "certs",
            "superlink",
            "--dir",
            str(self.certs),
            "--host",
            "127.0.0.1",
        )
        for attempt in range(1, SUPERLINK_ATTEMPTS + 1):
            superlink = self._start(
                [FEDMODEL, "superlink", "--certs", str(self.certs)]
                + ["--host", "127.0.0.1", "--port", str(self.port)],
                name="superlink",
                env=self.env,
            )
            if self._wait_for_port(superlink, timeout=240):
                break
            # It exited without listening: most likely another process took
            # the free port between free_port() and the bind. Try a new one.
            assert attempt < SUPERLINK_ATTEMPTS, (
                f"the SuperLink exited {attempt} times before listening; "
                f"see {self.directory / 'superlink.log'}"
            )
            self.port = free_port()
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
            f'address = "127.0.0.1:{self.port}"\n'
            f'root-certificates = "{self.certs / "ca.crt"}"\n'
        )

    def site_keys(self, name: str, *, register: bool, fedmodel: str = FEDMODEL) -> None:
        """A site's key pair; the server operator registers its public key."""
        self.command(fedmodel, "certs", "site", "--dir", str(self.keys), "--name", name)
        if register:
            self.command(
                "flwr", "supernode", "register", str(self.keys / f"{name}.pub")
            )

    def start_site(
        self,
        name: str,
        *,
        site_id: int,
        data_file: Path,
        max_epsilon: float,
        fedmodel: str = FEDMODEL,
        threads: int | None = None,
        labels_file: Path | None = None,
        columns: tuple[str, str] | None = None,
        short_heartbeat: bool = False,
    ) -> subprocess.Popen[bytes]:
        """A site's SuperNode with its own node config and state directory.

        It runs in a session (process group) of its own, as a site's service
        would, so `kill_site` can take it down with everything it started.
        `fedmodel` is the site's own `fedmodel` executable. `threads` caps the
        CPU threads its ClientApps compute with (OMP_NUM_THREADS), for sites
        that share one machine. `short_heartbeat`: Flower reports the site
        gone about 30 s after `kill_site`, not 70 s (`short_heartbeat/`).
        """
        env = flower_env(self.directory / f"home-{name}", Path(fedmodel).parent)
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        if short_heartbeat:
            env["PYTHONPATH"] = str(SHORT_HEARTBEAT)
        return self._start(
            [fedmodel, "supernode", "--superlink", f"127.0.0.1:{self.port}"]
            + ["--ca-cert", str(self.certs / "ca.crt")]
            + ["--auth-key", str(self.keys / name), "--site-id", str(site_id)]
            + ["--data-file", str(data_file), "--state-dir", str(self.state(name))]
            + ["--max-epsilon", str(max_epsilon), "--runtime-port", str(free_port())]
            + ([] if labels_file is None else ["--labels-file", str(labels_file)])
            + ([] if columns is None else ["--text-column", columns[0]])
            + ([] if columns is None else ["--label-column", columns[1]]),
            name=name,
            env=env,
            new_session=True,
        )

    def kill_site(self, site: subprocess.Popen[bytes]) -> None:
        """SIGKILL a site's SuperNode process group: a machine that dies."""
        os.killpg(os.getpgid(site.pid), signal.SIGKILL)
        site.wait(timeout=30)

    def state(self, name: str) -> Path:
        """A site's state directory (its ledger and feature cache)."""
        return self.directory / f"state-{name}"

    def log(self, name: str) -> str:
        """What a started process printed."""
        return (self.directory / f"{name}.log").read_text()

    def run(self, overrides: str, *, run_dir: Path, timeout: float = 300) -> str:
        """`flwr run` the apps on this federation; fail unless it completed.

        The app folder is the one `fedmodel flwr-app` writes (no code), so the
        SuperLink and each site run the fedmodel installed with them. The run
        times its exported model with `FEW_LATENCY_CALLS`.
        """
        overrides = " ".join([overrides, *FEW_LATENCY_CALLS])
        app = self.directory / "fedmodel-app"
        self.command(FEDMODEL, "flwr-app", str(app))
        output = self.command(
            "flwr",
            "run",
            str(app),
            "--stream",
            "--run-config",
            f'overrides="{overrides}" run-dir="{run_dir}"',
            timeout=timeout,
        )
        run_id = re.search(r"Successfully started run (\d+)", output)
        assert run_id, output
        listed = self.command("flwr", "list", "--run-id", run_id[1], "--format", "json")
        assert json.loads(listed)["runs"][0]["status"] == "finished:completed", output
        return output

    def command(self, *args: str, timeout: float = 120) -> str:
        """Run a command to completion in the repo; fail on a non-zero exit."""
        done = subprocess.run(
            list(args),
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    def stop(self) -> None:
        """Stop every started process and all its descendants, by PID.

        A process that exited early can leave children behind with a new
        parent; they carry a FLWR_HOME under this directory, which finds them.
        """
        tree: dict[int, psutil.Process] = {}
        for popen in self.started:
            try:
                root = psutil.Process(popen.pid)
                tree.update((p.pid, p) for p in [root, *root.children(recursive=True)])
            except psutil.NoSuchProcess:
                continue
        inside = f"{self.directory}{os.sep}"
        tree.update((p.pid, p) for p in with_flwr_home(lambda h: h.startswith(inside)))
        # No grace: nothing checks how they exit, and Flower's SuperNodes took 3 s.
        stop(list(tree.values()), grace=0)
        for popen in self.started:
            popen.wait(timeout=10)

    def _start(
        self,
        command: list[str],
        *,
        name: str,
        env: dict[str, str],
        new_session: bool = False,
    ) -> subprocess.Popen[bytes]:
        with (self.directory / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self.directory,
                stdout=log,
                stderr=log,
                start_new_session=new_session,
            )
        self.started.append(process)
        return process

    def _wait_for_port(self, process: subprocess.Popen[bytes], timeout: float) -> bool:
        """Whether `process` (or a process it started) came to listen on `self.port`.

        Not merely whether the port answers: on a busy machine another test's
        process (Ray's, say) can take the free port first, and then the
        commands that follow would talk to it. False if `process` exited first.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if self.port in listening_ports(process.pid):
                return True
            time.sleep(0.2)
        raise AssertionError(f"nothing listened on port {self.port} after {timeout} s")
