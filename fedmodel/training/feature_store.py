"""A party's cached head-mode features on its own disk, readable without the encoder.

In head mode the encoder is frozen, so the pooled features of a party's records
never change. They are embedded once and kept in the party's state directory
with what a later round needs to train on them without the tokenizer, the
encoder or transformers: the labels, the records' fingerprint (which ties the
privacy ledger to its data) and the dropout before the classification layer.

Features are keyed on the encoder's files (`encoder_identity`: its weights,
config and tokenizer), not only on its settings, so new files at the same
`model.path` embed afresh. A deployed site also keeps an index from its data
file to the features, keyed by the file's bytes and the settings that shape
its records or their features (encoder, max length, columns, labels), so a
later round finds them without reading the file. The key also holds the
validation share, seed and batch size, which shaped a site's split when it
held records out; a site now trains on every record, so a change of them only
has the site read its file and build the encoder again, which then finds the
same features by their fingerprint (the tiny test model's weights follow the
seed, so for it a new seed is a new encoder). Any change of model or data
misses the index, and the site embeds afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from fedmodel.config import RunSettings
from fedmodel.model.location import encoder_identity

log = logging.getLogger(__name__)

FEATURES_PREFIX = "features-"
SITE_INDEX_PREFIX = "site-features-"
READ_CHUNK = 1 << 20
# A writer's temp file is written in seconds, so one untouched for an hour was
# left by a writer that was killed; a live writer's file is never that old.
STALE_TEMP_AGE_S = 3600.0
# `_own_temp_file`'s names: "." + the stored file's name + "." + mkstemp's
# random part + ".tmp".
TEMP_NAME = re.compile(
    rf"\.(?:{re.escape(FEATURES_PREFIX)}[^./]+\.pt"
    rf"|{re.escape(SITE_INDEX_PREFIX)}[^./]+\.json)\.[a-z0-9_]+\.tmp"
)


@dataclass(frozen=True)
class StoredFeatures:
    """Pooled features of a party's training records and what trains on them."""

    features: torch.Tensor
    labels: torch.Tensor
    fingerprint: str
    dropout: float

    def __len__(self) -> int:
        """The number of training records (the ledger's n)."""
        return int(self.labels.shape[0])


def features_path(settings: RunSettings, *, fingerprint: str, state_dir: Path) -> Path:
    """Where the features of the records with this fingerprint are kept."""
    encoder = f"{settings.model}|{encoder_identity(settings)}"
    key = hashlib.sha256(
        f"{encoder}|{settings.task.max_length}|{fingerprint}".encode()
    ).hexdigest()[:16]
    return state_dir / f"{FEATURES_PREFIX}{key}.pt"


def read_features(path: Path) -> StoredFeatures | None:
    """The features stored at `path`, or None when absent, unreadable or old.

    A file a crash cut short is a cache miss (the records are embedded
    again), not a failure of every later round.
    """
    if not path.is_file():
        return None
    try:
        stored = torch.load(path)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        log.warning("ignoring unreadable stored features %s (%s)", path, exc)
        return None
    if not isinstance(stored, dict) or not {"fingerprint", "dropout"} <= set(stored):
        return None
    return StoredFeatures(
        features=stored["features"],
        labels=stored["labels"],
        fingerprint=str(stored["fingerprint"]),
        dropout=float(stored["dropout"]),
    )


def write_features(path: Path, stored: StoredFeatures) -> None:
    """Store features atomically (a temp file of this writer's own, then rename)."""
    with _own_temp_file(path) as tmp:
        torch.save(
            {
                "features": stored.features,
                "labels": stored.labels,
                "fingerprint": stored.fingerprint,
                "dropout": stored.dropout,
            },
            tmp,
        )


def site_file_key(settings: RunSettings, data_file: Path) -> str:
    """A key of a site's data file's bytes and the settings of its index (above)."""
    task = settings.task
    digest = hashlib.sha256(
        json.dumps(
            [
                str(settings.model),
                encoder_identity(settings),
                task.max_length,
                task.text_column,
                task.label_column,
                [str(label) for label in task.labels or ()],
                task.val_fraction,
                settings.finetune.batch_size,
                settings.seed,
            ]
        ).encode()
    )
    with data_file.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def remember_site_features(state_dir: Path, *, file_key: str, path: Path) -> None:
    """Note that the data file with `file_key` has its features at `path`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    index = state_dir / f"{SITE_INDEX_PREFIX}{file_key}.json"
    with _own_temp_file(index) as tmp:
        tmp.write_text(json.dumps({"features": path.name}))


@contextlib.contextmanager
def _own_temp_file(path: Path) -> Iterator[Path]:
    """A temp file beside `path` that replaces it when the block ends.

    The name is this writer's alone: two processes storing the same features
    at once (a site's overlapping messages) each rename a whole file, and the
    later rename wins. A cache needs no fsync: a file a crash cut short is read
    as a miss. On failure the temp file is removed and `path` is untouched.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_stale_temp_files(state_dir: Path) -> None:
    """Remove the temp files killed writers left in `state_dir`.

    Only files named as this store names its temp files, and only those
    untouched for `STALE_TEMP_AGE_S`, so a concurrent writer's file stays.
    Nothing else in the folder (the ledger, its own temp files) is touched.
    """
    if not state_dir.is_dir():
        return
    cutoff = time.time() - STALE_TEMP_AGE_S
    for entry in os.scandir(state_dir):
        if not TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # renamed by its writer, or taken by another sweep
        except OSError as exc:
            log.warning("cannot remove stale temp file %s (%s)", entry.path, exc)
            continue
        log.info("removed %s, left by a writer that was killed", entry.path)


def site_features(state_dir: Path, *, file_key: str) -> StoredFeatures | None:
    """The stored features of the data file with `file_key`, if a round made them."""
    index = state_dir / f"{SITE_INDEX_PREFIX}{file_key}.json"
    if not index.is_file():
        return None
    try:
        name = str(json.loads(index.read_text())["features"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable features index %s (%s)", index, exc)
        return None
    return read_features(state_dir / name)
