"""Run-folder outputs: rounds, summaries and the progress plot."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import yaml

from fedmodel.errors import FedmodelError
from fedmodel.run.folder_check import check_run_folder
from fedmodel.run.metrics import (
    append_round,
    numbered_name,
    plot_progress,
    read_rounds,
    write_json,
)
from tests.conftest import small_settings


def _round(number: int, epsilon: float | None) -> dict[str, object]:
    return {
        "round": number,
        "accuracy": 0.5 + number / 10,
        "epsilon_max": epsilon,
        "epsilon_mean": epsilon,
    }


def test_rounds_append_and_read_back(tmp_path: Path) -> None:
    append_round(tmp_path, _round(1, 1.5))
    append_round(tmp_path, _round(2, float("nan")))
    rounds = read_rounds(tmp_path)
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[1]["epsilon_max"] is None  # NaN is not JSON: written as null


def test_numbered_name_is_the_first_free_number(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    assert numbered_name(path).name == "metrics.1.jsonl"
    (tmp_path / "metrics.1.jsonl").touch()
    (tmp_path / "metrics.3.jsonl").touch()
    assert numbered_name(path).name == "metrics.2.jsonl"


def test_a_new_run_does_not_start_where_a_run_left_results(tmp_path: Path) -> None:
    new, resumed = small_settings(), small_settings("resume=true")
    (tmp_path / ".hydra").mkdir()  # Hydra's own files: a folder still new
    (tmp_path / "fedmodel.log").write_text("started\n")
    check_run_folder(tmp_path, new)
    ledger = tmp_path / "clients" / "client-1" / "privacy_ledger.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text("{}")
    with pytest.raises(FedmodelError, match=r"clients/client-1/privacy_ledger.json"):
        check_run_folder(tmp_path, new)
    append_round(tmp_path, _round(1, 1.0))
    with pytest.raises(FedmodelError, match=r"already holds a run \(metrics.jsonl, "):
        check_run_folder(tmp_path, new)
    # Continuing it is the way on, with the config a run writes before round 1.
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(new)))
    check_run_folder(tmp_path, resumed)


def test_a_resume_keeps_which_records_each_client_holds(tmp_path: Path) -> None:
    run = small_settings()
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(run)))
    more = run.num_clients + 1
    for override, named in (
        (f"num_clients={more}", f"num_clients={more} (the run's: {run.num_clients})"),
        ("seed=9", f"seed=9 (the run's: {run.seed})"),
        # Named as the group a user picks: it said partition.name='dirichlet'.
        ("partition=dirichlet", "partition=dirichlet (the run's: partition=iid)"),
        # Canaries are records of the audited client's training split. Before,
        # only the ledger's fingerprint check refused it, saying that the
        # task's data had changed.
        ("audit.canaries=5", "audit.canaries=5 (the run's: 0)"),
        ("audit.reference_canaries=7", "audit.reference_canaries=7 (the run's: "),
    ):
        with pytest.raises(FedmodelError, match=re.escape(named)):
            check_run_folder(tmp_path, small_settings("resume=true", override))
    # What neither deals records nor changes the privacy plan may change.
    relearn = small_settings("resume=true", "finetune.learning_rate=0.3")
    check_run_folder(tmp_path, relearn)


def test_a_deployed_resume_may_count_a_site_that_joined(tmp_path: Path) -> None:
    # Each site holds its own file: num_clients deals no record there, and
    # the round's warning about a third SuperNode asks for num_clients=3.
    # Before, the resume was refused saying it decided each client's records.
    deployed = ("federation=deployment", "num_clients=2")
    run = small_settings(*deployed)
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(run)))
    joined = small_settings(*deployed, "resume=true", "num_clients=3")
    check_run_folder(tmp_path, joined)
    # What does deal records is still kept.
    reseeded = small_settings(*deployed, "resume=true", "seed=9")
    with pytest.raises(FedmodelError, match=re.escape("seed=9 (the run's: ")):
        check_run_folder(tmp_path, reseeded)
    # So are the columns and labels a site may fix: its refusal of other ones
    # says a resume cannot change them (`client.site.RunRefusal`).
    for changed in ("task.text_column=note", "task.label_column=intent"):
        moved = small_settings(*deployed, "resume=true", changed)
        with pytest.raises(FedmodelError, match="start a new run in a new folder"):
            check_run_folder(tmp_path, moved)


def test_a_seed_change_is_refused_for_what_the_seed_draws(tmp_path: Path) -> None:
    # One client per file: the seed deals no records, but still draws others.
    sites = ",".join(str(tmp_path / f"site{i}.csv") for i in range(3))
    files = ("task=files", f"task.train_files=[{sites}]", "partition=natural")
    run = small_settings(*files)
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(run)))
    resumed = small_settings(*files, "seed=9", "resume=true")
    with pytest.raises(FedmodelError, match="seed=9") as refused:
        check_run_folder(tmp_path, resumed)
    assert "decide the run's records and classes" not in str(refused.value)
    assert "the seed draws what a run keeps from its start" in str(refused.value)


def test_a_changed_descriptions_file_is_refused_for_what_it_decides(
    tmp_path: Path,
) -> None:
    # The line said that task.label_descriptions decides which records each
    # client holds: it decides the head's start.
    sites = ",".join(str(tmp_path / f"site{i}.csv") for i in range(2))
    files = ("task=files", f"task.train_files=[{sites}]")
    run = small_settings(*files, f"task.label_descriptions={tmp_path / 'a.csv'}")
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(run)))
    resumed = small_settings(
        *files, f"task.label_descriptions={tmp_path / 'b.csv'}", "resume=true"
    )
    with pytest.raises(FedmodelError, match="task.label_descriptions=") as refused:
        check_run_folder(tmp_path, resumed)
    assert (
        "these decide the run's records and classes: which records each client "
        "holds (each client's ledger counts only what was spent on its own), the "
        "records the server holds and tests on, the label set and the head's start"
    ) in str(refused.value)


def test_a_dp_resume_keeps_the_plan_its_ledgers_were_calibrated_with(
    tmp_path: Path,
) -> None:
    run = small_settings()
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(run)))
    for override, named in (
        ("num_rounds=5", f"num_rounds=5 (the run's: {run.num_rounds})"),
        ("privacy.target_epsilon=12", "target_epsilon=12.0 (the run's: 8.0)"),
        ("finetune.local_epochs=3", "finetune.local_epochs=3 (the run's: 2)"),
        ("distill=federated", "distill.rounds=2 (the run's: 0)"),
    ):
        with pytest.raises(FedmodelError, match=re.escape(named)) as refused:
            check_run_folder(tmp_path, small_settings("resume=true", override))
        assert "keeps the noise multiplier of that plan" in str(refused.value)
    # Without DP there is no plan to keep: more rounds may follow.
    off = small_settings("privacy=off")
    (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(off)))
    more = small_settings("privacy=off", "resume=true", "num_rounds=5")
    check_run_folder(tmp_path, more)


def test_a_resume_that_switches_dp_on_or_off_names_privacy_mode(
    tmp_path: Path,
) -> None:
    # Refused both ways (off to dpsgd would claim a guarantee for rounds
    # trained without noise), naming the one key that changed; before, the
    # line listed whole config sections and a num_rounds equal to the run's.
    for run_mode, resume_mode in (("dpsgd", "off"), ("off", "dpsgd")):
        run = small_settings(f"privacy={run_mode}")
        (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(run)))
        resumed = small_settings(f"privacy={resume_mode}", "resume=true")
        with pytest.raises(FedmodelError) as refused:
            check_run_folder(tmp_path, resumed)
        named = f"with privacy={resume_mode} (the run's: privacy={run_mode}):"
        assert named in str(refused.value)
        assert "num_rounds" not in str(refused.value)
    # A deployment's DP-SGD plan is its sites' own, as empty here as off's:
    # before, comparing the two plans let rounds trained without noise (in a
    # simulation, or a deployment) go on as a deployment under DP-SGD.
    deployed = ("federation=deployment", "num_clients=2")
    for run_overrides, named in (
        (("privacy=off",), "privacy=dpsgd (the run's: privacy=off), federation="),
        (("privacy=off", *deployed), "privacy=dpsgd (the run's: privacy=off):"),
    ):
        run = small_settings(*run_overrides)
        (tmp_path / "resolved_config.yaml").write_text(yaml.safe_dump(asdict(run)))
        resumed = small_settings("privacy=dpsgd", *deployed, "resume=true")
        with pytest.raises(FedmodelError) as refused:
            check_run_folder(tmp_path, resumed)
        assert named in str(refused.value)
        assert "keeps the run's privacy mode and federation" in str(refused.value)


def test_a_resume_of_a_checkpoint_without_its_resolved_config_is_refused(
    tmp_path: Path,
) -> None:
    # Before, the checks above were skipped and a resume with another
    # privacy.target_epsilon went on from the checkpoint.
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.pt").write_bytes(b"")
    resumed = small_settings("resume=true", "privacy.target_epsilon=20")
    with pytest.raises(FedmodelError) as refused:
        check_run_folder(tmp_path, resumed)
    assert str(refused.value).startswith(
        f"resume=true in {tmp_path}: the run's checkpoint is there, but not its "
        "resolved_config.yaml"
    )


def test_a_resume_of_ledgers_without_their_resolved_config_is_refused(
    tmp_path: Path,
) -> None:
    # Before, the folder was taken for one that held no run, and each client
    # went on from its ledger at the noise of the run's plan (target 1), its
    # cap raised to this start's 8: not the plan privacy-plan shows for 8.
    for ledger in (
        "central_privacy_ledger.json",
        "clients/client-1/privacy_ledger.json",
    ):
        (tmp_path / ledger).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / ledger).write_text("{}")
        resumed = small_settings("resume=true", "privacy.target_epsilon=8")
        with pytest.raises(FedmodelError) as refused:
            check_run_folder(tmp_path, resumed)
        assert str(refused.value).startswith(
            f"resume=true in {tmp_path}: the run's privacy ledgers are there "
            f"({ledger}), but not its resolved_config.yaml"
        )
        (tmp_path / ledger).unlink()
    check_run_folder(tmp_path, resumed)  # a folder that held no run


def test_summary_is_written_without_nan_or_temp_files(tmp_path: Path) -> None:
    write_json(tmp_path / "summary.json", {"loss": float("inf"), "ok": [1.0]})
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "loss": None,
        "ok": [1.0],
    }
    assert not list(tmp_path.glob("*.tmp"))


def test_progress_plot_with_and_without_privacy(tmp_path: Path) -> None:
    for number in (1, 2, 3):
        append_round(tmp_path, _round(number, number * 1.0))
    for folder in (tmp_path, tmp_path / "off"):
        if folder.name == "off":
            folder.mkdir()
            append_round(folder, _round(1, None))
        image = matplotlib.image.imread(plot_progress(folder))
        # A real picture, not an empty canvas: several distinct colours.
        height, width, _ = image.shape
        assert height > 100 and width > 100
        assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 3
