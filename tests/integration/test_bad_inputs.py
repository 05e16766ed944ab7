"""Bad inputs through the real command: exit code 2, a named message, no traceback.

Each command runs against a run folder that already holds an earlier run's
saved state (a privacy ledger, a summary); none of it may change.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from transformers import GPT2Config, GPT2LMHeadModel

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data.clients import load_client_data
from fedmodel.run.layout import RESOLVED_CONFIG
from tests.conftest import charge_client_ledger

pytestmark = pytest.mark.integration

FEDMODEL = str(Path(sys.executable).parent / "fedmodel")
SMALL = [
    "model=tiny",
    "task.max_train_examples=200",
    "task.max_test_examples=50",
    "num_clients=2",
    "num_rounds=1",
    "partition=iid",
    "finetune.batch_size=32",
    "distill=off",
]


def _earlier_run(run_dir: Path, *overrides: str) -> dict[str, str]:
    """Saved state of an earlier run in `run_dir`; returns each file's hash.

    Client 0's ledger is one a round of `SMALL` charged: a resume refuses an
    unusable ledger before it checks the records or the model. The run's
    resolved config holds `overrides` too, the settings a resume of it keeps
    (a run writes it before round 1).
    """
    earlier = settings_from_dict({**compose_config(SMALL), "run_dir": str(run_dir)})
    train, _, _ = load_client_data(earlier, 0)
    charge_client_ledger(run_dir, 0, train)
    config = {**compose_config([*SMALL, *overrides]), "run_dir": str(run_dir)}
    resolved = yaml.safe_dump(asdict(settings_from_dict(config)), sort_keys=False)
    (run_dir / RESOLVED_CONFIG).write_text(resolved)
    (run_dir / "summary.json").write_text('{"final_accuracy": 0.5}\n')
    return _hashes(run_dir)


def _hashes(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name in ("privacy_ledger.json", "summary.json")
    }


def _simulate(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FEDMODEL, "simulate", *overrides],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _assert_user_error(done: subprocess.CompletedProcess[str], *named: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    for fragment in named:
        assert fragment in done.stderr, (fragment, done.stderr[-2000:])


def test_a_nan_setting_stops_and_keeps_the_earlier_run(tmp_path: Path) -> None:
    saved = _earlier_run(tmp_path)
    done = _simulate(
        *SMALL, "privacy.target_epsilon=nan", "resume=true", f"hydra.run.dir={tmp_path}"
    )
    _assert_user_error(done, "'privacy.target_epsilon'", "got nan", "> 0")
    assert _hashes(tmp_path) == saved


def test_a_new_run_in_a_finished_runs_folder_stops_and_keeps_it(
    tmp_path: Path,
) -> None:
    saved = _earlier_run(tmp_path)
    done = _simulate(*SMALL, f"hydra.run.dir={tmp_path}")
    _assert_user_error(
        done, f"the run folder {tmp_path} already holds a run", "resume=true"
    )
    assert _hashes(tmp_path) == saved


def test_a_run_folder_under_a_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("an earlier result\n")
    done = _simulate(*SMALL, f"hydra.run.dir={blocker}/run")
    _assert_user_error(done, "hydra.run.dir", f"{blocker} is a file, not a folder")
    assert blocker.read_text() == "an earlier result\n"


def test_a_repeated_label_column_is_named(tmp_path: Path) -> None:
    data = tmp_path / "site0.csv"
    rows = "\n".join(f"text {i},{'ab'[i % 2]},{'ba'[i % 2]}" for i in range(40))
    data.write_text("text,label,label\n" + rows + "\n", encoding="utf-8")
    other, test = tmp_path / "site1.csv", tmp_path / "test.csv"
    for path in (other, test):
        path.write_text("text,label\nfine,a\nfair,b\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    files = [
        "task=files",
        f"task.train_files=[{data},{other}]",
        f"task.test_file={test}",
        "partition=natural",
    ]
    saved = _earlier_run(run_dir, *files)
    done = _simulate(
        *(o for o in SMALL if not o.startswith("partition=")),  # each key once
        *files,
        # A new run would be refused for the folder first, before the data.
        "resume=true",
        f"hydra.run.dir={run_dir}",
    )
    _assert_user_error(done, str(data), "['label'] more than once")
    assert _hashes(run_dir) == saved


def test_a_resume_with_another_label_order_names_the_key(tmp_path: Path) -> None:
    # task.labels decides each record's label id, so its client's fingerprint:
    # the resume must name the key that changed, not report edited data.
    sites = []
    for site in range(2):
        path = tmp_path / f"site{site}.csv"
        rows = "\n".join(f"site {site} note {i},{'ny'[i % 2]}" for i in range(20))
        path.write_text("text,label\n" + rows + "\n", encoding="utf-8")
        sites.append(str(path))
    test = tmp_path / "test.csv"
    test.write_text("text,label\nheld out,y\nheld back,n\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    files = [*SMALL, "task=files", f"task.train_files=[{','.join(sites)}]"]
    files.append(f"task.test_file={test}")
    begun = settings_from_dict(
        {**compose_config([*files, "task.labels=[n,y]"]), "run_dir": str(run_dir)}
    )
    for client in range(begun.num_clients):  # what the run's round charged
        train, _, _ = load_client_data(begun, client)
        charge_client_ledger(run_dir, client, train)
    resolved = yaml.safe_dump(asdict(begun), sort_keys=False)
    (run_dir / RESOLVED_CONFIG).write_text(resolved)
    saved = _hashes(run_dir)
    done = _simulate(
        *files, "task.labels=[y,n]", "resume=true", f"hydra.run.dir={run_dir}"
    )
    _assert_user_error(done, "task.labels=['y', 'n'] (the run's: ['n', 'y'])")
    assert "data changed" not in done.stderr
    assert _hashes(run_dir) == saved


@pytest.mark.slow
def test_a_gpt2_checkpoint_stops_before_any_client_is_charged(tmp_path: Path) -> None:
    gpt2 = tmp_path / "gpt2"
    config = GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(gpt2)
    run_dir = tmp_path / "run"
    saved = _earlier_run(run_dir, f"model.path={gpt2}")
    done = _simulate(
        *SMALL, f"model.path={gpt2}", "resume=true", f"hydra.run.dir={run_dir}"
    )
    _assert_user_error(done, f"model.path '{gpt2}'", "'gpt2' checkpoint", "BERT-family")
    assert _hashes(run_dir) == saved
    assert not (run_dir / "clients" / "client-1").exists()  # nobody was charged
