"""Deployment commands: `certs`, `superlink`, `supernode`, `flwr-app`.

Each has an `add_*_arguments` (run by `fedmodel --help` and the parser) and a
`run_*` that imports what it needs (cryptography, Flower, Opacus) only then.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fedmodel.cli.errors import EXIT_OK
from fedmodel.cli.paths import user_path
from fedmodel.deploy.cert_validity import DEFAULT_DAYS, MAX_DAYS
from fedmodel.deploy.port_check import PORTS_TEXT, port_number
from fedmodel.deploy.superlink_check import superlink_host_port
from fedmodel.errors import FedmodelError

log = logging.getLogger(__name__)


def add_certs_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel certs superlink|site`: TLS certificates and site keys."""
    # argparse names a missing subcommand by its metavar, else by its dest.
    sub = parser.add_subparsers(dest="what", required=True, metavar="{superlink,site}")
    link = sub.add_parser(
        "superlink", help="server operator: a CA and the SuperLink's certificate"
    )
    link.add_argument("--dir", type=user_path, required=True, help="output folder")
    link.add_argument(
        "--host",
        action="append",
        required=True,
        help="a name or IP address sites use to reach the SuperLink (repeatable)",
    )
    link.add_argument(
        "--days",
        type=int,
        help=f"validity in days, 1 to {MAX_DAYS} (default: {DEFAULT_DAYS}; with "
        "--reissue, as long as the CA)",
    )
    link.add_argument(
        "--reissue",
        action="store_true",
        help="re-issue superlink.crt in --dir for the hosts given, signed by the CA "
        "there (needs its ca.key; the CA and superlink.key stay, so sites keep "
        "their ca.crt)",
    )
    site = sub.add_parser("site", help="site operator: the SuperNode's key pair")
    site.add_argument("--dir", type=user_path, required=True, help="output folder")
    site.add_argument("--name", required=True, help="the site's name, e.g. hospital-a")


def run_certs(args: argparse.Namespace) -> int:
    """Write the certificates or the key pair and say where each file went."""
    from fedmodel.deploy.certs import create_superlink_certificates
    from fedmodel.deploy.site_keys import create_site_keys

    if args.what == "superlink" and args.reissue:
        _reissue(args)
    elif args.what == "superlink":
        days = DEFAULT_DAYS if args.days is None else args.days
        made = create_superlink_certificates(args.dir, hosts=args.host, days=days)
        print(f"CA certificate (give to every site): {made.ca_cert}")
        print(f"CA private key (keep offline):       {made.ca_key}")
        print(f"SuperLink certificate and key:       {made.cert}, {made.key}")
    else:
        keys = create_site_keys(args.dir, name=args.name)
        print(f"private key (stays at the site):              {keys.private_key}")
        print(f"public key (send to the server operator):     {keys.public_key}")
    return EXIT_OK


def _reissue(args: argparse.Namespace) -> None:
    """Re-issue the SuperLink's certificate and say what changed."""
    from fedmodel.deploy.superlink_reissue import reissue_superlink_certificate

    made = reissue_superlink_certificate(args.dir, hosts=args.host, days=args.days)
    print(f"SuperLink certificate re-issued:  {made.cert} ({', '.join(made.names)})")
    if made.replaced is not None:
        print(f"the certificate it replaced:      {made.replaced}")
    if made.unread is not None:
        print(
            "the old certificate could not be read, so the names it held were not "
            f"compared: {made.unread}"
        )
    if made.dropped:
        print(f"names the new one no longer holds: {', '.join(made.dropped)}")
    print(
        "signed by the CA in the folder: every site keeps its ca.crt; start the "
        "SuperLink again with the same --certs to serve it"
    )


def port(text: str) -> int:
    """A TCP port number from the command line (`port_check.PORTS`)."""
    number = port_number(text)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number: give a whole number {PORTS_TEXT}"
        )
    return number


def listen_host(text: str) -> str:
    """The SuperLink's --host: an address or name alone (`[::]` and `::` too)."""
    bracketed_with_port = text.startswith("[") and not text.endswith("]")
    if "://" in text or text.count(":") == 1 or bracketed_with_port:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a host alone: give the address or name to listen on "
            "without a URL prefix or a port (the port is --port), e.g. 0.0.0.0"
        )
    return text


def superlink_address(text: str) -> str:
    """A SuperLink address from the command line: HOST:PORT, as Flower takes it."""
    try:
        superlink_host_port(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_superlink_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel superlink`: start Flower's SuperLink with TLS and node auth."""
    parser.add_argument("--certs", type=user_path, help="folder from `certs superlink`")
    parser.add_argument(
        "--host",
        type=listen_host,
        default="0.0.0.0",
        help="address to listen on (default: 0.0.0.0)",
    )
    parser.add_argument(
        "--port", type=port, default=9093, help="port to listen on (default: 9093)"
    )
    parser.add_argument(
        "--database", type=user_path, help="SuperLink state file (default: in memory)"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="no TLS, no node authentication"
    )


def run_superlink(args: argparse.Namespace) -> int:
    """Replace this process with the SuperLink."""
    from fedmodel.deploy.launch import exec_flower, superlink_command

    exec_flower(
        superlink_command(
            certs_dir=args.certs,
            host=args.host,
            port=args.port,
            database=args.database,
            insecure=args.insecure,
        )
    )
    return EXIT_OK


def add_supernode_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel supernode`: start Flower's SuperNode for one site."""
    required = parser.add_argument_group("required")
    required.add_argument(
        "--superlink",
        type=superlink_address,
        required=True,
        help="SuperLink host:port",
    )
    required.add_argument(
        "--site-id", type=int, required=True, help="this site's number (unique)"
    )
    required.add_argument(
        "--data-file",
        type=user_path,
        required=True,
        help="CSV / TSV / JSONL / Parquet records",
    )
    required.add_argument(
        "--state-dir", type=user_path, required=True, help="privacy ledger and caches"
    )
    required.add_argument(
        "--max-epsilon",
        type=float,
        required=True,
        help="the most epsilon this site will spend (caps the server's target)",
    )
    parser.add_argument(
        "--ca-cert", type=user_path, help="the server operator's ca.crt"
    )
    parser.add_argument("--auth-key", type=user_path, help="this site's private key")
    parser.add_argument("--delta", type=float, help="this site's delta (< 1/n)")
    parser.add_argument(
        "--labels-file",
        type=user_path,
        help="the federation's labels, one per line: the site refuses a server "
        "that sends another label set",
    )
    for role in ("text", "label"):
        parser.add_argument(
            f"--{role}-column",
            metavar="NAME",
            help=f"the data-file's {role} column the site agreed to (give both "
            "or neither): the site refuses a server that names another",
        )
    parser.add_argument(
        "--runtime-port",
        type=port,
        default=9094,
        help="local port of the SuperNode's runtime API, unique per machine "
        "(default: 9094)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="no TLS, no node authentication"
    )


def run_supernode(args: argparse.Namespace) -> int:
    """Check the site's settings, then replace this process with the SuperNode."""
    from fedmodel.client.site import site_from_node_config
    from fedmodel.deploy.launch import exec_flower, supernode_command

    node_config: dict[str, object] = {
        "site-id": args.site_id,
        "data-file": str(args.data_file),
        "state-dir": str(args.state_dir),
        "max-epsilon": args.max_epsilon,
    }
    if args.delta is not None:
        node_config["delta"] = args.delta
    if args.labels_file is not None:
        node_config["labels-file"] = str(args.labels_file)
    for key in ("text-column", "label-column"):
        if (value := getattr(args, key.replace("-", "_"))) is not None:
            node_config[key] = value
    site = site_from_node_config(node_config)
    if site is None:  # pragma: no cover - the node config above names a site
        raise FedmodelError("the SuperNode's arguments name no site")
    command = supernode_command(
        site,
        superlink=args.superlink,
        ca_cert=args.ca_cert,
        private_key=args.auth_key,
        runtime_port=args.runtime_port,
        insecure=args.insecure,
    )
    if (notice := new_budget_notice(site.state_dir, site_id=site.site_id)) is not None:
        log.warning("%s", notice)
    # Made only once every setting passed its check.
    site.state_dir.mkdir(parents=True, exist_ok=True)
    exec_flower(command)
    return EXIT_OK


def new_budget_notice(state_dir: Path, *, site_id: int) -> str | None:
    """A line for a SuperNode launched on a state folder that holds no ledger.

    Its first round opens a new budget: right for a new site, an under-count
    for one whose operator mistyped --state-dir, which no later check catches
    (the server knows the site's figures only within a run). None when the
    folder holds a ledger or an archived one (`fedmodel ledger reset`).
    """
    from fedmodel.privacy.ledger_record import LEDGER_FILE
    from fedmodel.privacy.ledger_reset import archived_ledgers

    if (state_dir / LEDGER_FILE).exists() or archived_ledgers(state_dir):
        return None
    return (
        f"site {site_id}: --state-dir {state_dir} holds no privacy ledger, so its "
        "first round starts a new budget at epsilon 0. If this site has trained "
        f"before, stop it and give the --state-dir that holds its {LEDGER_FILE} "
        "(`fedmodel ledger show --state-dir DIR` says what a folder holds)"
    )


def add_flwr_app_arguments(parser: argparse.ArgumentParser) -> None:
    """`fedmodel flwr-app [FOLDER]`: the app folder `flwr run` takes."""
    from fedmodel.federation.app_folder import DEFAULT_FOLDER

    parser.add_argument(
        "folder",
        nargs="?",
        type=user_path,
        default=DEFAULT_FOLDER,
        help=f"the folder to write pyproject.toml into (default: {DEFAULT_FOLDER})",
    )


def run_flwr_app(args: argparse.Namespace) -> int:
    """Write the app folder and show the `flwr run` command that uses it."""
    from fedmodel.federation.app_folder import write_app_folder

    path, written = write_app_folder(args.folder)
    done = "wrote" if written else "kept (it holds what this fedmodel writes)"
    print(f"{done} {path}: fedmodel's apps, no code (each machine runs its own)")
    print(f"start runs with: flwr run {args.folder} ...")
    return EXIT_OK
