"""Console entry point: `fedmodel <command> ...`.

Every command is a `Command` in `COMMANDS`: its name, a one-line summary for
`fedmodel --help`, a function that adds its arguments, and one that runs it.
The arguments are parsed before any heavy module (torch, Flower,
transformers) is imported, so every `--help` prints at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fedmodel import __version__
from fedmodel.cli import deploy, ledger, predict, research, resume
from fedmodel.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
    report_error,
)
from fedmodel.errors import FedmodelError


@dataclass(frozen=True)
class Command:
    """One `fedmodel` subcommand."""

    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command(
        "resume",
        "continue a stopped simulation from its run folder",
        resume.add_arguments,
        resume.run,
        description=resume.DESCRIPTION,
    ),
    Command(
        "privacy-plan",
        "each client's privacy plan (noise, epsilon), no training",
        research.add_privacy_plan_arguments,
        research.run_privacy_plan,
        description="Print each client's calibrated privacy plan without "
        "training. Exits 1 when a client's plan is flagged.",
    ),
    Command(
        "sweep-report",
        "a --multirun sweep as a CSV, a table and a plot",
        research.add_sweep_report_arguments,
        research.run_sweep_report,
        description="Collect a sweep's runs into a CSV, a markdown table and "
        "privacy_utility.png.",
        aliases=("report",),
    ),
    Command(
        "audit",
        "membership-inference audit of a finished run",
        research.add_audit_arguments,
        research.run_audit,
        description="Membership-inference audit of a finished run's final "
        "model; writes audit.json. Exits 1 when a bound exceeds the claimed "
        "epsilon.",
    ),
    Command(
        "predict",
        "label texts with an exported teacher or student",
        predict.add_arguments,
        predict.run,
        description=predict.DESCRIPTION,
    ),
    Command(
        "flwr-app",
        "the app folder for `flwr run`: fedmodel's apps, no code",
        deploy.add_flwr_app_arguments,
        deploy.run_flwr_app,
        description="Write FOLDER/pyproject.toml, a Flower app that names "
        "fedmodel's ServerApp and ClientApp and holds no code: `flwr run "
        "FOLDER` then runs the fedmodel installed on the SuperLink's machine and "
        "on each SuperNode's.",
    ),
    Command(
        "certs",
        "TLS certificates (server) or a key pair (site)",
        deploy.add_certs_arguments,
        deploy.run_certs,
    ),
    Command(
        "superlink",
        "start Flower's SuperLink (TLS, node authentication)",
        deploy.add_superlink_arguments,
        deploy.run_superlink,
    ),
    Command(
        "supernode",
        "start one site's SuperNode on its own records",
        deploy.add_supernode_arguments,
        deploy.run_supernode,
    ),
    Command(
        "ledger",
        "show or archive a site's privacy ledger",
        ledger.add_arguments,
        ledger.run,
    ),
)
SIMULATE_SUMMARY = "run a federated simulation (see `simulate --help`)"


def build_parser() -> argparse.ArgumentParser:
    """The `fedmodel` parser, one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="fedmodel",
        description="Federated, differentially private fine-tuning of a shared "
        "BERT text classifier (Flower + Opacus).",
        epilog="`fedmodel COMMAND --help` describes a command. Exit codes: 0 done, "
        "1 a finding (flagged plan, audit bound), 2 bad input or config, "
        f"{EXIT_INTERRUPTED} simulate or resume stopped by Ctrl-C and "
        f"{EXIT_TERMINATED} by SIGTERM (its last line says how to continue). "
        "superlink and supernode exit with Flower's codes: 0 stopped by Ctrl-C "
        f"or SIGTERM ({EXIT_TERMINATED} for a SuperLink stopped by SIGTERM), "
        "1 an error in Flower's log.",
    )
    parser.add_argument(
        "--version", action="version", version=f"fedmodel {__version__}"
    )
    sub = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    # Hydra parses simulate's arguments; listed here for --help only.
    sub.add_parser("simulate", help=SIMULATE_SUMMARY, add_help=False)
    for command in COMMANDS:
        command_parser = sub.add_parser(
            command.name,
            help=command.summary,
            description=command.description
            or command.summary[0].upper() + command.summary[1:] + ".",
            aliases=list(command.aliases),
        )
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
        _in_own_words(command_parser)
    return parser


def _in_own_words(parser: argparse.ArgumentParser) -> None:
    """Have `parser`, and each subcommand under it, report errors in its name.

    `fedmodel ledger show --bogus` is refused by `fedmodel ledger show`, under
    its usage, not by `fedmodel ledger`.
    """
    parser.set_defaults(prog=parser.prog, parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for nested in set(action.choices.values()):
                _in_own_words(nested)


def _unrecognized(parser: argparse.ArgumentParser, extra: Sequence[str]) -> str:
    """The refusal of `extra`, with the ways in which a value goes astray."""
    hint = "quote a value that holds spaces"
    repeatable = [
        action.option_strings[-1]
        for action in parser._actions
        if isinstance(action, argparse._AppendAction)
    ]
    if repeatable:
        option = repeatable[0]
        hint += f"; {option} takes one value each time: {option} A {option} B"
    return f"unrecognized arguments: {' '.join(extra)} ({hint})"


def run_command(argv: Sequence[str]) -> int:
    """Run `fedmodel ARGV...` and return its exit code.

    argparse's usage errors exit 2 themselves; a FedmodelError exits 2 with
    its message in the same format.
    """
    argv = list(argv)
    # Per-load progress bars (transformers' "Loading weights") are library
    # chatter: fedmodel prints its own progress lines. Set to 0 to see them.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if argv[:1] == ["simulate"]:
        from fedmodel.cli.simulate import run_simulate

        return run_simulate(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and _takes_overrides(args, extra):
        args.overrides = [*args.overrides, *extra]  # overrides after an option
    elif extra:  # in the command's own words: `fedmodel predict: error: ...`
        args.parser.error(_unrecognized(args.parser, extra))
    try:
        return int(args.run(args))
    except FedmodelError as exc:
        from fedmodel.cli.hydra_errors import error_line

        report_error(args.prog, error_line(exc))
        return EXIT_USER_ERROR


def _takes_overrides(args: argparse.Namespace, extra: Sequence[str]) -> bool:
    """Whether `extra` are Hydra overrides a command split with an option."""
    return isinstance(getattr(args, "overrides", None), list) and all(
        "=" in item and not item.startswith("-") for item in extra
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Dispatch `fedmodel <command> ...` and exit with its code."""
    try:
        code = run_command(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:
        # `fedmodel ... | head` closed the pipe: stop quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
