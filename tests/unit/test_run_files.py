"""A run folder's text files that do not parse are named, with where and what to do."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from fedmodel.cli.resume import hydras_own, resume_argv
from fedmodel.cli.resume_finished import check_rounds_left
from fedmodel.errors import FedmodelError
from fedmodel.research.sweep_runs import find_runs
from fedmodel.run.metrics import append_round, keep_rounds_up_to, read_rounds
from fedmodel.run.run_files import parsed_file
from fedmodel.run.stored_config import stored_config

RUN = ["model=tiny", "num_clients=2", "num_rounds=2"]


def _rounds(run: Path, *numbers: int) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        append_round(run, {"round": number, "accuracy": 0.1 * number})
    return run


def test_json_and_yaml_that_do_not_parse_are_named_with_line_and_column(
    tmp_path: Path,
) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text('{\n  "status": "ok",\n}\n')
    with pytest.raises(FedmodelError) as caught:
        parsed_file(summary, fix="restore it")
    assert str(caught.value).startswith(f"{summary} cannot be read at line 3, column 1")
    assert str(caught.value).endswith("; restore it")
    config = tmp_path / "resolved_config.yaml"
    config.write_text("seed: 1\nmodel: [tiny\n")
    with pytest.raises(FedmodelError, match="config.yaml cannot be read at line 3"):
        parsed_file(config, fix="restore it")
    config.write_bytes(b"seed: \xff\n")
    with pytest.raises(FedmodelError, match=r"it is not UTF-8 text \(byte 6\)"):
        parsed_file(config, fix="restore it")
    summary.write_text('{"status": "ok"}')
    assert parsed_file(summary, fix="restore it") == {"status": "ok"}


def test_a_last_metrics_line_cut_short_is_left_out_and_dropped_on_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a write that stopped midway leaves: part of a line, no newline.
    run = _rounds(tmp_path / "run", 1, 2)
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"round": 3, "accur')
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        assert [r["round"] for r in read_rounds(run)] == [1, 2]
    assert "line 3, the last, was cut short" in caplog.text
    keep_rounds_up_to(run, 2)
    assert (run / "metrics.jsonl").read_text().count("\n") == 2
    assert (run / "metrics.jsonl").read_text().endswith("}\n")
    append_round(run, {"round": 3, "accuracy": 0.3})
    assert [r["round"] for r in read_rounds(run)] == [1, 2, 3]


def test_a_metrics_line_that_is_not_a_round_is_named(tmp_path: Path) -> None:
    run = _rounds(tmp_path / "run", 1, 2)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(f"{lines[0]}\nnot json\n{lines[1]}\n")
    with pytest.raises(FedmodelError) as caught:
        keep_rounds_up_to(run, 2)
    message = str(caught.value)
    assert message.startswith(f"{run / 'metrics.jsonl'} cannot be read at line 2,")
    assert "delete that line" in message
    # A torn line that ends with its newline was not cut by the last write.
    (run / "metrics.jsonl").write_text(f"{lines[0]}\n{lines[1][:20]}\n")
    with pytest.raises(FedmodelError, match="at line 2,"):
        read_rounds(run)
    (run / "metrics.jsonl").write_text(f"{lines[0]}\n[1, 2]\n")
    with pytest.raises(FedmodelError, match="line 2 holds no round's figures"):
        read_rounds(run)
    # Nothing was rewritten by the refused reads.
    assert (run / "metrics.jsonl").read_text() == f"{lines[0]}\n[1, 2]\n"


def _run_folder(run: Path) -> Path:
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(RUN))
    (run / "resolved_config.yaml").write_text("seed: 42\n")
    return run


def test_a_resume_names_an_overrides_file_or_summary_that_does_not_parse(
    tmp_path: Path,
) -> None:
    run = _run_folder(tmp_path / "run")
    (run / ".hydra" / "overrides.yaml").write_text("- model=tiny\n- [num_rounds\n")
    with pytest.raises(FedmodelError) as caught:
        resume_argv(run, [])
    message = str(caught.value)
    assert message.startswith(f"{run / '.hydra' / 'overrides.yaml'} cannot be read")
    assert f"fedmodel simulate OVERRIDES resume=true hydra.run.dir={run}" in message
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(RUN))
    (run / "summary.json").write_text('{"status": "ok", ')
    with pytest.raises(FedmodelError, match="summary.json cannot be read at line 1"):
        check_rounds_left(run, resume_argv(run, []))
    (run / "summary.json").unlink()
    check_rounds_left(run, resume_argv(run, []))


def test_a_resolved_config_that_does_not_parse_is_named(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run")
    (run / "resolved_config.yaml").write_text("seed: 42\ntask: {name: bank\n")
    with pytest.raises(FedmodelError, match="resolved_config.yaml cannot be read at"):
        stored_config(run)
    (run / "summary.json").write_text("{")
    with pytest.raises(FedmodelError, match="move its run folder out of the sweep"):
        find_runs(tmp_path)


@pytest.mark.parametrize("text", ["", "- seed: 42\n", "42\n"])
def test_a_resolved_config_that_holds_no_mapping_is_named(
    text: str, tmp_path: Path
) -> None:
    # Emptied by a write a crash cut short, or edited: before, it read as no
    # config at all, and a resume went on unchecked (a changed
    # privacy.target_epsilon was not refused).
    run = _run_folder(tmp_path / "run")
    (run / "resolved_config.yaml").write_text(text)
    with pytest.raises(FedmodelError, match="resolved_config.yaml does not hold a"):
        stored_config(run)


def test_an_unreadable_hydra_record_is_said_and_replays_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _run_folder(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        assert hydras_own(run) == []  # no hydra.yaml: nothing to say
        assert caplog.text == ""
        (run / ".hydra" / "hydra.yaml").write_text("hydra: [\n")
        assert hydras_own(run) == []
    assert "hydra.yaml cannot be read" in caplog.text
    assert "replays none of the start's own Hydra settings" in caplog.text
