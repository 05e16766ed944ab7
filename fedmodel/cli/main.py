"""Console entry point: `fedmodel <command> ...`, one function per command."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fedmodel.cli import deploy as deploy_cli
from fedmodel.config import CONF_DIR
from fedmodel.errors import FedmodelError
from fedmodel.run.console import reports_user_errors, setup_logging


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _simulate(cfg: DictConfig) -> float:
    from fedmodel.federation.simulation import simulate

    setup_logging()
    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = simulate({str(k): v for k, v in raw.items()}, run_dir=run_dir)
    except FedmodelError as exc:
        logging.getLogger("fedmodel").error("%s", exc)
        raise SystemExit(2) from None
    epsilons = [c["epsilon"] for c in summary["clients"] if c["epsilon"] is not None]
    spent = f", max client epsilon {max(epsilons):.3f}" if epsilons else ""
    logging.getLogger("fedmodel").info(
        "done: final test accuracy %.4f, macro-F1 %.4f%s, %.0f s; outputs in %s",
        summary["final_accuracy"],
        summary["final_macro_f1"],
        spent,
        summary["wall_seconds"],
        run_dir,
    )
    return float(summary["final_accuracy"])


def _run_simulate() -> None:
    _simulate()


@reports_user_errors
def _run_predict() -> None:
    from fedmodel.cli.predict import run_predict

    _exit_with(run_predict)


def _exit_with(command: Callable[[list[str]], int]) -> None:
    """Run a command on the rest of argv and exit with its code."""
    raise SystemExit(command(sys.argv[1:]))


@reports_user_errors
def _run_privacy_plan() -> None:
    from fedmodel.research.privacy_plan import run_privacy_plan

    _exit_with(run_privacy_plan)


@reports_user_errors
def _run_report() -> None:
    from fedmodel.research.sweep import run_report

    _exit_with(run_report)


@reports_user_errors
def _run_audit() -> None:
    from fedmodel.research.audit import run_audit

    _exit_with(run_audit)


# Each command reads the rest of sys.argv itself (Hydra overrides or argparse).
COMMANDS: dict[str, Callable[[], None]] = {
    "simulate": _run_simulate,
    "certs": deploy_cli.certs,
    "superlink": deploy_cli.superlink,
    "supernode": deploy_cli.supernode,
    "ledger": deploy_cli.ledger,
    "predict": _run_predict,
    "privacy-plan": _run_privacy_plan,
    "report": _run_report,
    "audit": _run_audit,
}


def main() -> None:
    """Dispatch `fedmodel <command> ...`."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(
            f"usage: fedmodel {{{','.join(COMMANDS)}}} [arguments...]",
            file=sys.stderr,
        )
        raise SystemExit(2)
    command = COMMANDS[sys.argv.pop(1)]
    command()
