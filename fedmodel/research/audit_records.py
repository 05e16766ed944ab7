"""A finished run's records and model losses, rebuilt for `fedmodel audit`.

The audit re-creates a client's training and held-out records (and the
canaries planted among them) from the run's resolved config, exactly as the
run built them, and computes the final model's loss on each record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fedmodel.config import RunSettings
from fedmodel.config.wording import plural
from fedmodel.data.canaries import canary_splits
from fedmodel.data.tokenization import make_text_loader
from fedmodel.errors import FedmodelError
from fedmodel.privacy.ledger_record import (
    LEDGER_FILE,
    LedgerRecord,
    LedgerRefusal,
    read_record,
)
from fedmodel.research.audit_defaults import MIN_RECORDS
from fedmodel.run.layout import (
    RESOLVED_CONFIG,
    TEACHER_DIR,
    simulated_client_dir,
)
from fedmodel.serve.torch_runtime import TorchClassifier
from fedmodel.training.fingerprint import data_fingerprint
from fedmodel.training.loops import text_inputs

LOSS_BATCH = 128
# How the audit's refusals name the folder it loads the model from.
TEACHER_KEY = "the run's model folder"


def example_losses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: datasets.Dataset,
    *,
    max_length: int,
) -> np.ndarray:
    """The model's cross-entropy loss on each record, in the split's order."""
    loader = make_text_loader(
        tokenizer,
        list(split["text"]),
        list(split["label"]),
        max_length=max_length,
        batch_size=LOSS_BATCH,
        shuffle=False,
        seed=0,
    )
    losses = []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            logits = model(**text_inputs(batch)).logits
            losses.append(
                torch.nn.functional.cross_entropy(
                    logits, batch["labels"], reduction="none"
                ).numpy()
            )
    return np.concatenate(losses) if losses else np.zeros(0)


def rebuilt_canaries(
    settings: RunSettings,
    *,
    run_dir: Path,
    client: int,
    train: datasets.Dataset,
    val: datasets.Dataset,
    planted: int,
    num_labels: int | None,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The canaries the client trained on and their references, rebuilt and checked."""
    assert num_labels is not None, "the exported teacher states its label count"
    clean = datasets.concatenate_datasets(
        [members_without(train, planted), val.select_columns(["text", "label"])]
    )
    canaries, reference = canary_splits(
        settings, client_records=clean, num_labels=num_labels
    )
    if len(canaries) < 2 or len(reference) < 2:
        raise FedmodelError(
            f"{run_dir} planted {len(canaries)} canaries with {len(reference)} "
            "references; the canary audit needs at least 2 of each: rerun with "
            "audit.canaries >= 2 and audit.reference_canaries >= 2"
        )
    if list(canaries["text"]) != list(train["text"][len(train) - planted :]):
        raise FedmodelError(  # an internal check: the two canary paths disagree
            f"the canaries rebuilt from {run_dir}/{RESOLVED_CONFIG} are not the "
            f"ones client {client}'s training split ends with; please report it"
        )
    return canaries, reference


def require_held_out(
    val: datasets.Dataset, *, client: int, run_dir: Path, val_fraction: float
) -> None:
    """Refuse an audit of a client without held-out records to compare with.

    `val_fraction` is the run's task.val_fraction, named in the message: 0
    (the default) holds none back, and a small fraction of a small client
    can hold back fewer than the audit needs.
    """
    if len(val) >= MIN_RECORDS:
        return
    if val_fraction == 0:
        why = "task.val_fraction 0, the default: a client trains on every record"
        fix = "task.val_fraction above 0"
    else:
        why = f"task.val_fraction {val_fraction:g} of its records"
        fix = f"a task.val_fraction above {val_fraction:g}"
    raise FedmodelError(
        f"client {client} of {run_dir} holds {len(val)} held-out "
        f"{plural(len(val), 'record')} ({why}); the audit compares members with "
        f"at least {MIN_RECORDS} held-out records of the same client: rerun with "
        f"{fix} (e.g. 0.5 for a strong audit)"
    )


def members_without(train: datasets.Dataset, planted: int) -> datasets.Dataset:
    """The client's own training records, without the canaries appended to them."""
    return train.select(range(len(train) - planted)).select_columns(["text", "label"])


def at_most(
    split: datasets.Dataset, limit: int, rng: np.random.Generator
) -> datasets.Dataset:
    """A random subset of at most `limit` records, in the split's order."""
    if len(split) <= limit:
        return split
    return split.select(np.sort(rng.choice(len(split), size=limit, replace=False)))


def client_figures(summary: dict[str, Any], client: int) -> dict[str, Any]:
    """One client's privacy figures from the run's summary."""
    for figures in summary.get("clients", []):
        if figures.get("client_id") == client:
            return dict(figures)
    return {}


def charged_ledger(
    run_dir: Path, client: int, train: datasets.Dataset
) -> LedgerRecord | None:
    """The client's ledger, refusing records other than the ones it covered.

    A simulated DP client's ledger keeps its training records' fingerprint;
    records rebuilt from changed data or code would be attacked as members
    that were never trained on. None for a run without client ledgers.
    """
    path = simulated_client_dir(run_dir, client) / LEDGER_FILE
    if not path.is_file():
        return None
    try:
        ledger = read_record(path)
    except LedgerRefusal as exc:  # a folder `fedmodel ledger reset` refuses
        raise exc.in_a_run() from exc
    charged = ledger.data_fingerprint
    rebuilt = data_fingerprint(train)
    if rebuilt != charged:
        raise FedmodelError(
            f"the training records rebuilt for client {client} from "
            f"{run_dir}/{RESOLVED_CONFIG} (fingerprint {rebuilt}) are not the ones "
            f"its ledger {path} was charged for ({charged}): the data or the code "
            "changed since the run, so the audit would attack records the model "
            "never trained on. Audit with the data and fedmodel version of the run"
        )
    return ledger


def load_teacher(run_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The run's exported teacher and its tokenizer, loaded as `fedmodel predict` does.

    A damaged or incomplete folder is a FedmodelError naming the file, as
    predict's: without its tokenizer.json transformers would build an empty
    tokenizer, and every text would be scored as unknown tokens.
    """
    teacher = TorchClassifier(run_dir / TEACHER_DIR, key=TEACHER_KEY)
    return teacher.model, teacher.tokenizer
