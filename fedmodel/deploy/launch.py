"""Command lines for Flower's SuperLink and SuperNode, secure by default.

`fedmodel superlink` and `fedmodel supernode` replace themselves (exec) with
Flower's own `flower-superlink` / `flower-supernode`, so the process a user
starts, stops and monitors is Flower's. What they add: TLS and SuperNode
authentication on unless `--insecure` is given (then a warning), checks before
Flower starts (every certificate, key and data file exists, every certificate
and key parses, each certificate is within its dates, the state folder and the
database's folder can be written), and a correctly quoted
`--node-config` carrying the site's own settings. The files a launch names are
checked in `launch_files`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from fedmodel.client.site import (
    DATA_FILE,
    DELTA,
    LABEL_COLUMN,
    LABELS_FILE,
    MAX_EPSILON,
    SITE_ID,
    STATE_DIR,
    TEXT_COLUMN,
    SiteConfig,
)
from fedmodel.client.site_agreement import agreed_labels
from fedmodel.client.site_cap import unmeasured_cap
from fedmodel.deploy.cert_files import (
    CA_CERT,
    SUPERLINK_CERT,
    SUPERLINK_KEY,
    check_certificate,
    check_site_private_key,
    check_superlink_key,
)
from fedmodel.deploy.cert_validity import check_valid_now
from fedmodel.deploy.launch_files import (
    check_database,
    check_site_file,
    existing_file,
)
from fedmodel.deploy.port_check import check_port_free
from fedmodel.deploy.superexec_check import check_superexec_address
from fedmodel.deploy.superlink_check import check_superlink_certificate
from fedmodel.errors import FedmodelError
from fedmodel.run.folder_check import check_writable_folder

log = logging.getLogger(__name__)
# Read by flwr 1.41's SuperExec (flwr/supercore/superexec/run_superexec.py;
# default 1.0 s, allowed 0.01 to 60).
TASK_POLL_INTERVAL_ENV = "FLWR_SUPEREXEC_TASK_POLL_INTERVAL"
TASK_POLL_INTERVAL_SECONDS = "0.1"

# Where flwr 1.41's SuperNode serves its runtime API (its UVICORN_DEFAULT_HOST;
# `--port` sets the port).
RUNTIME_HOST = "127.0.0.1"

_CA_EXPIRED = (
    "no site verifies a certificate it signed, nor does the SuperLink's own "
    "SuperExec; make a new CA and certificate in a new folder (`fedmodel certs "
    "superlink --dir NEW_DIR` and a --host for each name sites dial), start the "
    "SuperLink with --certs NEW_DIR and give its ca.crt to every site"
)
INSECURE_WARNING = (
    "--insecure: TLS is OFF. Model updates and node identities travel in clear "
    "text and any SuperNode can connect. Use this only on a trusted test network."
)


def superlink_command(
    *,
    certs_dir: Path | None,
    host: str,
    port: int,
    database: Path | None,
    insecure: bool = False,
) -> list[str]:
    """`flower-superlink` with TLS from `certs_dir` and node authentication on.

    With `insecure` there is neither TLS nor node authentication (Flower
    allows authentication only over TLS) and a warning is logged.
    """
    check_port_free(
        host,
        port,
        option="--port",
        fix="stop the SuperLink that holds it, or give another --port",
    )
    command = ["flower-superlink", "--host", host, "--port", str(port)]
    command += ["--disable-runtime-dependency-installation"]
    if database is not None:
        check_database(database)
        command += ["--database", str(database)]
    if insecure:
        log.warning("%s", INSECURE_WARNING)
        return [*command, "--insecure"]
    if certs_dir is None:
        raise FedmodelError(
            "the SuperLink needs --certs DIR (made by `fedmodel certs superlink`), "
            "or --insecure to run without TLS"
        )
    ca_cert, cert, key = _superlink_tls_files(certs_dir, host=host)
    return [
        *command,
        "--ssl-ca-certfile",
        str(ca_cert),
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        "--enable-supernode-auth",
    ]


def _superlink_tls_files(certs_dir: Path, *, host: str) -> tuple[Path, Path, Path]:
    """`certs_dir`'s CA certificate, SuperLink certificate and key, checked.

    Each must parse, both certificates be within their dates, and the
    SuperLink's name the address its own SuperExec dials.
    """
    ca_cert, cert, key = (
        existing_file(certs_dir / name, "--certs")
        for name in (CA_CERT, SUPERLINK_CERT, SUPERLINK_KEY)
    )
    check_valid_now(
        check_certificate(ca_cert, option="--certs"),
        path=ca_cert,
        option="--certs",
        expired_fix=_CA_EXPIRED,
    )
    made = check_certificate(cert, option="--certs", expected=SUPERLINK_CERT)
    check_valid_now(
        made,
        path=cert,
        option="--certs",
        expired_fix="every site refuses it, as does the SuperLink's own SuperExec, "
        "so no ServerApp could start; re-issue it with `fedmodel certs superlink "
        f"--dir {certs_dir} --reissue` and a --host for each name sites dial "
        "(signed by the folder's CA, with its ca.key, so every site keeps its "
        "ca.crt)",
    )
    check_superlink_key(key, option="--certs")
    check_superexec_address(made, path=cert, host=host)
    return ca_cert, cert, key


def supernode_command(
    site: SiteConfig,
    *,
    superlink: str,
    ca_cert: Path | None,
    private_key: Path | None,
    runtime_port: int,
    insecure: bool = False,
) -> list[str]:
    """`flower-supernode` for one site, dialling `superlink` (host:port).

    TLS is verified against `ca_cert` (once here, when the SuperLink answers)
    and the node signs in with `private_key`; `insecure` drops both and logs a
    warning, as does a cap below the budgets the budget rule was measured at.
    """
    check_site_file(site)
    if (unmeasured := unmeasured_cap(site)) is not None:
        log.warning("%s", unmeasured)
    if site.labels_file is not None:
        agreed_labels(existing_file(site.labels_file, "--labels-file"))
    check_writable_folder(
        site.state_dir, key="--state-dir", what="the state folder", example="state"
    )
    check_port_free(
        RUNTIME_HOST,
        runtime_port,
        option="--runtime-port",
        fix="every SuperNode on a machine needs a --runtime-port of its own: "
        "give one that no other process listens on",
    )
    command = [
        "flower-supernode",
        "--superlink",
        superlink,
        "--port",
        str(runtime_port),
        "--node-config",
        node_config_arg(site),
    ]
    if insecure:
        log.warning("%s", INSECURE_WARNING)
        return [*command, "--insecure"]
    if ca_cert is None or private_key is None:
        raise FedmodelError(
            "a SuperNode needs --ca-cert (the server operator's ca.crt) and "
            "--auth-key (the site's private key from `fedmodel certs site`), or "
            "--insecure to run without TLS and authentication"
        )
    ca_cert, private_key = _site_tls_files(ca_cert, private_key, superlink)
    return [
        *command,
        "--root-certificates",
        str(ca_cert),
        "--auth-supernode-private-key",
        str(private_key),
    ]


def _site_tls_files(
    ca_cert: Path, private_key: Path, superlink: str
) -> tuple[Path, Path]:
    """The site's CA certificate and key, checked, as absolute paths.

    Both must parse, the CA be within its dates, and verify the SuperLink at
    `superlink` where it answers.
    """
    ca_cert = existing_file(ca_cert, "--ca-cert")
    check_valid_now(
        check_certificate(ca_cert, option="--ca-cert"),
        path=ca_cert,
        option="--ca-cert",
        expired_fix="it verifies no SuperLink: ask the server operator for the "
        "ca.crt of the CA their SuperLink runs with now",
    )
    private_key = existing_file(private_key, "--auth-key")
    check_site_private_key(private_key, option="--auth-key")
    check_superlink_certificate(superlink, ca_cert)
    return ca_cert, private_key


def node_config_arg(site: SiteConfig) -> str:
    """The site's settings as Flower's `--node-config` string (TOML values)."""
    values: dict[str, object] = {
        SITE_ID: site.site_id,
        DATA_FILE: str(site.data_file.resolve()),
        STATE_DIR: str(site.state_dir.resolve()),
        MAX_EPSILON: site.max_epsilon,
    }
    if site.delta is not None:
        values[DELTA] = site.delta
    if site.labels_file is not None:
        values[LABELS_FILE] = str(site.labels_file.resolve())
    if site.columns is not None:
        values[TEXT_COLUMN], values[LABEL_COLUMN] = site.columns
    for key in (DATA_FILE, STATE_DIR, LABELS_FILE, TEXT_COLUMN, LABEL_COLUMN):
        if key in values and '"' in str(values[key]):
            raise FedmodelError(
                f"--{key} {values[key]!r} contains a double quote, which Flower's "
                "--node-config cannot carry: use a path or name without one"
            )
    return " ".join(f"{key}={json.dumps(value)}" for key, value in values.items())


def exec_flower(command: list[str]) -> NoReturn:
    """Replace this process with a Flower command from this environment.

    The Flower executables next to this Python come first on PATH (the
    SuperLink and SuperNode start further Flower processes from PATH), and
    apps run in this environment: no per-run dependency installation.
    Flower's SuperExec (started by the SuperLink and by each SuperNode)
    checks for a new task every second by default; it polls its own
    Flower process on this machine, so a shorter interval costs little and
    starts each round's app sooner. An operator's own setting wins.
    """
    bin_dir = str(Path(sys.executable).parent)
    env = {
        TASK_POLL_INTERVAL_ENV: TASK_POLL_INTERVAL_SECONDS,
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, env)
