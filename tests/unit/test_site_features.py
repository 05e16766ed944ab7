"""A head-mode site reuses its own features between messages, and imports late.

Flower starts a fresh ClientApp process for every message, so what a round
imports and loads is paid every round at every site. Round 1 embeds the
site's records and stores the features; later rounds train on them without
the tokenizer, the encoder or transformers, and with the same ledger. A change
of the file or of a setting that shapes the features misses the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from tempfile import mkstemp
from typing import Any

import datasets
import pandas as pd
import pytest
from flwr.app import Context, RecordDict

from fedmodel.client.message_timings import MESSAGE_TIMINGS
from fedmodel.client.site import site_from_node_config
from fedmodel.client.site_data import site_round_records
from fedmodel.federation import client_app
from fedmodel.federation.messages import METRICS_KEY
from fedmodel.training.feature_store import (
    STALE_TEMP_AGE_S,
    StoredFeatures,
    features_path,
    read_features,
    site_features,
    site_file_key,
    sweep_stale_temp_files,
)
from fedmodel.training.fingerprint import data_fingerprint
from tests.unit.test_site import (
    _site_round,
    _train_message,
    deployment_settings,
    node_config,
)

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

STAGES = {"process_start", "imports", "data", "model_load", "training", "reply"}


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a round on stored features must not build this")


def test_later_rounds_train_on_stored_features_without_the_encoder(
    tmp_path: Path,
    site_file: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = deployment_settings(bank_rows[1], "privacy.target_epsilon=8")
    assert settings.finetune.mode == "head"
    state = tmp_path / "state"
    config = node_config(site_file, state, **{"max-epsilon": 8.0})

    first = _site_round(settings, config, 1)
    # The site trains on every row of its file (task.val_fraction is 0).
    assert first["num-examples"] == len(bank_rows[0])
    assert len(list(state.glob("features-*.pt"))) == 1
    assert len(list(state.glob("site-features-*.json"))) == 1

    message = _train_message(settings, 2)
    monkeypatch.setattr("fedmodel.model.load.build_classifier", _refuse)
    monkeypatch.setattr("fedmodel.client.site_data.load_site_records", _refuse)
    context = Context(
        run_id=1, node_id=7, node_config=config, state=RecordDict(), run_config={}
    )
    reply = client_app.train(message, context)
    second = dict(reply.content.metric_records[METRICS_KEY])
    assert second["num-examples"] == first["num-examples"]
    # The same ledger goes on: the stored fingerprint is the records' own.
    assert first["epsilon"] < float(second["epsilon"]) <= 8.0 + 1e-9
    ledger = json.loads((state / "privacy_ledger.json").read_text())
    assert [r["round"] for r in ledger["rounds"]] == [1, 2]

    timings = [
        json.loads(line) for line in (state / MESSAGE_TIMINGS).read_text().splitlines()
    ]
    assert [t["round"] for t in timings] == [1, 2]
    assert all(set(t) == STAGES | {"round"} for t in timings)
    assert all(t[stage] >= 0 for t in timings for stage in STAGES)


@pytest.mark.parametrize("change", ["file", "max_length"])
def test_a_change_of_data_or_model_settings_misses_the_stored_features(
    tmp_path: Path,
    site_file: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    change: str,
) -> None:
    settings = deployment_settings(bank_rows[1], "privacy.target_epsilon=8")
    state = tmp_path / "state"
    config = node_config(site_file, state, **{"max-epsilon": 8.0})
    site = site_from_node_config(config)
    assert site is not None
    _site_round(settings, config, 1)
    again = site_round_records(settings, site, head_features=True)
    assert isinstance(again.split, StoredFeatures)

    if change == "file":
        bank_rows[0].iloc[1:].to_csv(site_file, index=False)
    else:
        settings = deployment_settings(
            bank_rows[1], "privacy.target_epsilon=8", "task.max_length=24"
        )
    records = site_round_records(settings, site, head_features=True)
    assert not isinstance(records.split, StoredFeatures)
    # A LoRA or distillation round never reads stored features.
    records = site_round_records(settings, site, head_features=False)
    assert not isinstance(records.split, StoredFeatures)


def _check_the_client_app_imports_none_of(modules: list[str]) -> None:
    """Import the ClientApp in a fresh interpreter: none of `modules` is loaded."""
    probe = (
        "import sys, fedmodel.federation.client_app; "
        f"print([m for m in {modules!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_client_app_imports_neither_transformers_nor_the_data_libraries() -> None:
    _check_the_client_app_imports_none_of(
        ["transformers", "peft", "datasets", "flwr_datasets", "pandas", "sklearn"]
    )


def test_the_client_app_imports_neither_torch_nor_opacus() -> None:
    # A ledger query's process (a resume's first round, a SuperNode that
    # reconnected) reads one ledger file: only a train message pays for them.
    _check_the_client_app_imports_none_of(["torch", "opacus"])


def test_different_records_never_share_a_fingerprint() -> None:
    # A text with a line break once read as a record boundary: these two
    # files hashed alike and shared one features file.
    two = datasets.Dataset.from_dict(
        {"text": ["first note", "second note"], "label": [0, 1]}
    )
    one = datasets.Dataset.from_dict(
        {"text": ["first note\n1\tsecond note"], "label": [0]}
    )
    assert data_fingerprint(two) != data_fingerprint(one)
    # Records without line breaks hash as before (ledgers keep their prints).
    before = hashlib.sha256(b"0\tfirst note\n1\tsecond note\n").hexdigest()[:16]
    assert data_fingerprint(two) == before


def test_the_fingerprint_reads_the_records_in_one_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: a query per record and column of a client's partition (records
    # selected from the task's split): 0.27 s a round for a default bank
    # client of 2,415 records, more than building the encoder took.
    every = datasets.Dataset.from_dict(
        {
            "text": [f"note {i}" for i in range(100)],
            "label": [i % 3 for i in range(100)],
        }
    )
    split = every.select(range(0, 100, 2))
    expected = hashlib.sha256(
        "".join(f"{i % 3}\tnote {i}\n" for i in range(0, 100, 2)).encode()
    ).hexdigest()[:16]
    queries: list[object] = []
    real = datasets.Dataset._getitem

    def counted(self: datasets.Dataset, key: Any, **kwargs: Any) -> Any:
        queries.append(key)
        return real(self, key, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "_getitem", counted)
    assert data_fingerprint(split) == expected
    assert len(queries) == 1


def test_a_stored_features_file_a_crash_cut_short_is_a_cache_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "features-x.pt").write_bytes(b"cut")
    (tmp_path / "site-features-k.json").write_text('{"features": "features-x.pt"}')
    (tmp_path / "site-features-bad.json").write_text('{"feat')
    with caplog.at_level("WARNING", logger="fedmodel"):
        assert read_features(tmp_path / "features-x.pt") is None
        assert site_features(tmp_path, file_key="k") is None
        assert site_features(tmp_path, file_key="bad") is None
    assert len(caplog.records) == 3


def test_new_weights_at_the_same_model_path_miss_the_stored_features(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")
    weights = encoder / "model.safetensors"
    weights.write_bytes(b"first weights")
    settings = deployment_settings(bank_rows[1], f"model.path={encoder}")

    def keys() -> tuple[Path, str]:
        stored = features_path(settings, fingerprint="abc", state_dir=tmp_path)
        return stored, site_file_key(settings, site_file)

    first = keys()
    assert keys() == first  # the same bytes: the same store
    weights.write_bytes(b"second weights, same path")
    second = keys()
    assert second[0] != first[0] and second[1] != first[1]


def test_two_writers_storing_the_same_features_at_once_both_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second writer (a site's overlapping message) stores the same features
    # while the first is still writing: with a shared temp name the first
    # writer's rename found its temp file gone and its round failed.
    import torch

    from fedmodel.training import feature_store

    stored = StoredFeatures(
        features=torch.ones(3, 4),
        labels=torch.tensor([0, 1, 0]),
        fingerprint="f" * 16,
        dropout=0.1,
    )
    path = tmp_path / "features-x.pt"
    real_save = torch.save
    nested = []

    def save_with_a_second_writer(obj: Any, target: Any) -> None:
        real_save(obj, target)
        if not nested:  # the second writer runs between save and rename
            nested.append(target)
            feature_store.write_features(path, stored)

    monkeypatch.setattr(feature_store.torch, "save", save_with_a_second_writer)
    feature_store.write_features(path, stored)
    again = read_features(path)
    assert again is not None and again.fingerprint == stored.fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


KILLED_WRITER = """
import os, sys, torch
from pathlib import Path
from fedmodel.training import feature_store

real_save = torch.save

def save_then_die(obj, target):
    real_save(obj, target)
    os._exit(9)  # killed between its temp file and the rename

torch.save = save_then_die
feature_store.write_features(Path(sys.argv[1]), feature_store.StoredFeatures(
    features=torch.ones(2, 3), labels=torch.tensor([0, 1]),
    fingerprint="f" * 16, dropout=0.1,
))
"""


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_killed_writers_temp_file_is_swept_once_an_hour_old(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / "features-x.pt")],
        check=False,
    )
    assert done.returncode == 9
    (left,) = tmp_path.glob(".features-x.pt.*.tmp")
    # A live writer's file, and files that are not the store's temp files.
    handle, name = mkstemp(prefix=".site-features-k.json.", suffix=".tmp", dir=tmp_path)
    os.close(handle)
    live = Path(name)
    others = [".privacy_ledger.json.abc123.tmp", "features-y.pt", "notes.tmp"]
    for name in others:
        (tmp_path / name).write_text("keep")
        _age(tmp_path / name, 2 * STALE_TEMP_AGE_S)

    sweep_stale_temp_files(tmp_path)
    assert left.exists()  # killed a moment ago: it could still be a live writer's
    _age(left, STALE_TEMP_AGE_S + 60)
    sweep_stale_temp_files(tmp_path)
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, *others])
    sweep_stale_temp_files(tmp_path / "no-such-folder")  # a site's first round


def test_a_sites_round_sweeps_its_stale_temp_files(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    settings = deployment_settings(bank_rows[1], "privacy.target_epsilon=8")
    state = tmp_path / "state"
    state.mkdir()
    stale, fresh = state / ".features-x.pt.old1.tmp", state / ".features-x.pt.new1.tmp"
    stale.write_bytes(b"cut")
    fresh.write_bytes(b"being written")
    _age(stale, STALE_TEMP_AGE_S + 60)
    _site_round(settings, node_config(site_file, state, **{"max-epsilon": 8.0}), 1)
    assert not stale.exists() and fresh.exists()
