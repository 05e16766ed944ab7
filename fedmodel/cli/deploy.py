"""Deployment commands: `fedmodel certs`, `superlink`, `supernode`, `ledger`.

Each reads its own arguments from sys.argv (the `fedmodel` dispatcher has
removed the command name) and turns a FedmodelError into exit code 2 with the
message and no traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fedmodel.client.site import site_from_node_config
from fedmodel.deploy.certs import create_site_keys, create_superlink_certificates
from fedmodel.deploy.launch import exec_flower, superlink_command, supernode_command
from fedmodel.errors import FedmodelError
from fedmodel.run.console import reports_user_errors


@reports_user_errors
def certs() -> None:
    """`fedmodel certs superlink|site`: TLS certificates and site keys."""
    parser = argparse.ArgumentParser(prog="fedmodel certs")
    sub = parser.add_subparsers(dest="what", required=True)
    link = sub.add_parser(
        "superlink", help="server operator: a CA and the SuperLink's certificate"
    )
    link.add_argument("--dir", type=Path, required=True, help="output folder")
    link.add_argument(
        "--host",
        action="append",
        required=True,
        help="a name or IP address sites use to reach the SuperLink (repeatable)",
    )
    link.add_argument("--days", type=int, default=365, help="validity in days")
    site = sub.add_parser("site", help="site operator: the SuperNode's key pair")
    site.add_argument("--dir", type=Path, required=True, help="output folder")
    site.add_argument("--name", required=True, help="the site's name, e.g. hospital-a")
    args = parser.parse_args()
    if args.what == "superlink":
        made = create_superlink_certificates(args.dir, hosts=args.host, days=args.days)
        print(f"CA certificate (give to every site): {made.ca_cert}")
        print(f"CA private key (keep offline):       {made.ca_key}")
        print(f"SuperLink certificate and key:       {made.cert}, {made.key}")
    else:
        keys = create_site_keys(args.dir, name=args.name)
        print(f"private key (stays at the site):              {keys.private_key}")
        print(f"public key (send to the server operator):     {keys.public_key}")


@reports_user_errors
def superlink() -> None:
    """`fedmodel superlink`: start Flower's SuperLink with TLS and node auth."""
    parser = argparse.ArgumentParser(prog="fedmodel superlink")
    parser.add_argument("--certs", type=Path, help="folder from `certs superlink`")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=9093, help="port to listen on")
    parser.add_argument(
        "--database", type=Path, help="SuperLink state file (default: in memory)"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="no TLS, no node authentication"
    )
    args = parser.parse_args()
    exec_flower(
        superlink_command(
            certs_dir=args.certs,
            host=args.host,
            port=args.port,
            database=args.database,
            insecure=args.insecure,
        )
    )


@reports_user_errors
def supernode() -> None:
    """`fedmodel supernode`: start Flower's SuperNode for one site."""
    parser = argparse.ArgumentParser(prog="fedmodel supernode")
    parser.add_argument("--superlink", required=True, help="SuperLink host:port")
    parser.add_argument("--ca-cert", type=Path, help="the server operator's ca.crt")
    parser.add_argument("--auth-key", type=Path, help="this site's private key")
    parser.add_argument(
        "--site-id", type=int, required=True, help="this site's number (unique)"
    )
    parser.add_argument(
        "--data-file", type=Path, required=True, help="CSV / JSONL / Parquet records"
    )
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="privacy ledger and caches"
    )
    parser.add_argument(
        "--max-epsilon",
        type=float,
        required=True,
        help="the most epsilon this site will spend (caps the server's target)",
    )
    parser.add_argument("--delta", type=float, help="this site's delta (< 1/n)")
    parser.add_argument(
        "--runtime-port",
        type=int,
        default=9094,
        help="local port of the SuperNode's runtime API (unique per machine)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="no TLS, no node authentication"
    )
    args = parser.parse_args()
    node_config: dict[str, object] = {
        "site-id": args.site_id,
        "data-file": str(args.data_file),
        "state-dir": str(args.state_dir),
        "max-epsilon": args.max_epsilon,
    }
    if args.delta is not None:
        node_config["delta"] = args.delta
    site = site_from_node_config(node_config)
    assert site is not None
    site.state_dir.mkdir(parents=True, exist_ok=True)
    exec_flower(
        supernode_command(
            site,
            superlink=args.superlink,
            ca_cert=args.ca_cert,
            private_key=args.auth_key,
            runtime_port=args.runtime_port,
            insecure=args.insecure,
        )
    )


@reports_user_errors
def ledger() -> None:
    """`fedmodel ledger show|reset --state-dir DIR`: a site's privacy budget."""
    # Imported here: the accountants load Opacus, which the launchers do not need.
    from fedmodel.privacy.ledger_reset import archive_ledger, ledger_status

    parser = argparse.ArgumentParser(prog="fedmodel ledger")
    sub = parser.add_subparsers(dest="what", required=True)
    show = sub.add_parser("show", help="print what the site has spent")
    show.add_argument("--state-dir", type=Path, required=True)
    reset = sub.add_parser(
        "reset", help="archive the ledger so the next run starts a new budget"
    )
    reset.add_argument("--state-dir", type=Path, required=True)
    reset.add_argument(
        "--yes", action="store_true", help="confirm: forget the spent epsilon"
    )
    args = parser.parse_args()
    if args.what == "show":
        status = ledger_status(args.state_dir)
        print(
            f"{status.path}: client {status.client_id}, epsilon "
            f"{status.epsilon:.4f} of cap {status.target_epsilon:g} at delta "
            f"{status.delta:.3g}, {status.rounds} round(s) charged"
            + (", budget exhausted" if status.budget_exhausted else "")
        )
        return
    if not args.yes:
        status = ledger_status(args.state_dir)
        raise FedmodelError(
            f"{status.path} records epsilon {status.epsilon:.4f} already spent by "
            f"client {status.client_id}; a reset lets the site spend a new budget, "
            "which is only sound on data that the spent budget did not cover. "
            "Add --yes to archive it"
        )
    status, archived = archive_ledger(args.state_dir)
    print(
        f"archived {status.path} (epsilon {status.epsilon:.4f}, {status.rounds} "
        f"round(s)) as {archived}; the next round starts a new budget"
    )
