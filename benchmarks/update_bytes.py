"""Bytes of one client update per round, by fine-tuning mode, on the shipped MiniLM.

A client's update is `fedmodel.model.head.trainable_state` of its model, sent as a
`flwr.app.ArrayRecord`; its size is `ArrayRecord.count_bytes()`, the figure the
server writes to metrics.jsonl (`bytes_sent` sums it over the `clients_sent`
of a round, the selected clients that the ledger check did not hold back,
`bytes_received` over the updates accepted). The global weights the server
sends each client have the same keys and shapes, so the same size.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/update_bytes.py
    .venv/bin/python benchmarks/update_bytes.py --from-runs outputs/2026-*/
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from fedmodel.config import compose_config, settings_from_dict  # noqa: E402
from fedmodel.config.modes import FINETUNE_MODE_NAMES  # noqa: E402
from fedmodel.run.layout import METRICS_FILE, RESOLVED_CONFIG  # noqa: E402
from fedmodel.run.metrics import read_rounds  # noqa: E402

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

# PEFT asks transformers a deprecated question when it wraps the model.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")


@dataclass(frozen=True)
class UpdateSize:
    """What one client sends back in one round, for one fine-tuning mode."""

    label: str
    mode: str
    tensors: int
    parameters: int
    bytes: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=FINETUNE_MODE_NAMES,
        default=list(FINETUNE_MODE_NAMES),
    )
    parser.add_argument(
        "--model", default="minilm", help="model config (conf/model/), default minilm"
    )
    parser.add_argument(
        "--with-embeddings",
        action="store_true",
        help="add a full-mode row with finetune.train_embeddings=true",
    )
    parser.add_argument(
        "--from-runs",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="run folders (or folders holding them) whose metrics.jsonl to read",
    )
    return parser.parse_args(argv)


def measure(
    model_name: str, mode: str, *, label: str, overrides: Sequence[str] = ()
) -> UpdateSize:
    """Build the model as a client does and size its trainable state."""
    from flwr.app import ArrayRecord

    from fedmodel.data.tasks import load_task
    from fedmodel.model.finetune import prepare_for_finetuning
    from fedmodel.model.head import trainable_state
    from fedmodel.model.load import build_classifier

    raw = compose_config([f"model={model_name}", f"finetune={mode}", *overrides])
    settings = settings_from_dict(raw)
    label_names = load_task(settings.task, seed=settings.seed).label_names
    model = build_classifier(
        settings.model, label_names=label_names, seed=settings.seed
    )
    state = trainable_state(prepare_for_finetuning(model, settings.finetune))
    return UpdateSize(
        label=label,
        mode=mode,
        tensors=len(state),
        parameters=sum(tensor.numel() for tensor in state.values()),
        bytes=ArrayRecord(state).count_bytes(),
    )


def print_sizes(sizes: list[UpdateSize], *, model_name: str) -> None:
    full = next((s for s in sizes if s.label == "full"), None)
    print(f"One client update per round, model={model_name}:")
    print()
    print("| finetune | tensors | parameters | bytes | MiB | vs full |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        ratio = f"{size.bytes / full.bytes:.4f}" if full else "-"
        print(
            f"| {size.label} | {size.tensors} | {size.parameters:,} "
            f"| {size.bytes:,} | {size.bytes / 2**20:.2f} | {ratio} |"
        )
    print()
    print(
        "Per round the server sends this many bytes to each client it asks to "
        "train (bytes_sent = clients_sent x this) and receives as many from each "
        "accepted one (bytes_received)."
    )


def run_folders(paths: Sequence[Path]) -> list[Path]:
    """Every folder holding a metrics.jsonl, at or under the given paths."""
    found: list[Path] = []
    for path in paths:
        if (path / METRICS_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p.parent for p in path.rglob(METRICS_FILE))
        else:
            print(f"note: {path} is not a folder; skipped", file=sys.stderr)
    return found


def _resolved(run: Path) -> dict[str, Any]:
    path = run / RESOLVED_CONFIG
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def print_runs(runs: list[Path], sizes: list[UpdateSize], *, model_name: str) -> None:
    expected = {s.label: s.bytes for s in sizes}
    print()
    print(
        "From run folders (medians over rounds; per update sent = bytes_sent / "
        "clients_sent, which a line written before that key has not: nan; per "
        "update received = bytes_received / clients_aggregated):"
    )
    print()
    print(
        "| run | model | finetune | rounds | bytes_sent | bytes_received "
        "| per update sent | per update received | expected |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        rounds = [r for r in read_rounds(run) if "bytes_sent" in r]
        config = _resolved(run)
        model = str(config.get("model", {}).get("name", "?"))
        finetune = config.get("finetune", {})
        mode = str(finetune.get("mode", "?"))
        if finetune.get("train_embeddings"):
            mode += "+embeddings"
        if not rounds:
            print(f"| {run} | {model} | {mode} | 0 | - | - | - | - | - |")
            continue
        sent = statistics.median(r["bytes_sent"] for r in rounds)
        received = statistics.median(r["bytes_received"] for r in rounds)
        # Not clients_selected: it counts the nodes the ledger check held back,
        # which were sent nothing.
        sent_to = [r for r in rounds if r.get("clients_sent")]
        per_sent = (
            statistics.median(r["bytes_sent"] / r["clients_sent"] for r in sent_to)
            if sent_to
            else float("nan")
        )
        accepted = [r for r in rounds if r.get("clients_aggregated")]
        per_received = (
            statistics.median(
                r["bytes_received"] / r["clients_aggregated"] for r in accepted
            )
            if accepted
            else float("nan")
        )
        known = expected.get(mode) if model == model_name else None
        print(
            f"| {run} | {model} | {mode} | {len(rounds)} | {sent:,.0f} "
            f"| {received:,.0f} | {per_sent:,.0f} | {per_received:,.0f} "
            f"| {'-' if known is None else f'{known:,}'} |"
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import transformers

    transformers.utils.logging.disable_progress_bar()
    rows: list[tuple[str, str, tuple[str, ...]]] = [
        (mode, mode, ()) for mode in args.modes
    ]
    if args.with_embeddings:
        rows.append(("full+embeddings", "full", ("finetune.train_embeddings=true",)))
    sizes = [
        measure(args.model, mode, label=label, overrides=overrides)
        for label, mode, overrides in rows
    ]
    print_sizes(sizes, model_name=args.model)
    if args.from_runs:
        print_runs(run_folders(args.from_runs), sizes, model_name=args.model)


if __name__ == "__main__":
    main()
