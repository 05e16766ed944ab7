"""A run's data file paths are stored absolute, so it goes on from any folder.

A resume compares what the paths name, and a run folder an older fedmodel
wrote, with the paths as typed, still resumes from the folder it began in.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from fedmodel.config import from_run_config, settings_from_dict, to_run_config
from fedmodel.config.file_paths import with_absolute_paths
from fedmodel.errors import FedmodelError
from fedmodel.federation import server_setup
from fedmodel.federation.server_setup import (
    settings_from_run_config,
    write_resolved_config,
)
from fedmodel.privacy.durable_file import write_durably
from fedmodel.run import task_file_hashes
from fedmodel.run.folder_check import check_run_folder
from fedmodel.run.layout import RESOLVED_CONFIG, TASK_FILE_HASHES
from tests.conftest import small_settings

FILES = ("task=files", "task.train_files=[a.csv,b.csv]", "task.test_file=test.csv")


def test_every_data_file_path_is_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    began = tmp_path / "began"
    began.mkdir()
    monkeypatch.chdir(began)
    settings = small_settings(
        "task=files",
        "task.train_files=[sites/a.csv,./sites/../b.csv]",
        "task.test_file=test.csv",
        "task.validation_file=../held.csv",
        "task.label_descriptions=labels.csv",
        "distill.transfer_file=public.txt",
    )
    stored = asdict(settings)
    assert stored["task"]["train_files"] == [
        str(began / "sites" / "a.csv"),
        str(began / "b.csv"),
    ]
    task = stored["task"]
    assert task["test_file"] == str(began / "test.csv")
    assert task["validation_file"] == str(tmp_path / "held.csv")
    assert task["label_descriptions"] == str(began / "labels.csv")
    assert stored["distill"]["transfer_file"] == str(began / "public.txt")
    # Read back in another folder (a ClientApp's, an audit's), they stay.
    monkeypatch.chdir(tmp_path)
    assert asdict(settings_from_dict(stored)) == stored


def test_flwr_run_overrides_name_the_servers_files_to_every_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ServerApp composes `overrides` in the SuperLink's working directory;
    # a ClientApp elsewhere gets the same absolute paths in the run-config.
    monkeypatch.chdir(tmp_path)
    overrides = " ".join([*FILES, "model=tiny"])
    server = settings_from_run_config({"overrides": overrides, "run-dir": "run"})
    assert server.task.train_files == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    client = settings_from_dict(from_run_config(to_run_config(asdict(server))))
    assert client.task == server.task


def test_flwr_run_says_its_relative_paths_are_the_superlinks_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The operator types `flwr run` in one folder (or on another machine); the
    # ServerApp takes a relative path from the SuperLink's working directory,
    # and a missing file there was refused as "relative to the working
    # directory", which the operator took to be their own.
    superlink = tmp_path / "superlink"
    superlink.mkdir()
    monkeypatch.chdir(superlink)
    overrides = " ".join(
        [*FILES, f"task.validation_file={tmp_path / 'held.csv'}", "model=tiny"]
    )
    with caplog.at_level(logging.WARNING, logger=server_setup.__name__):
        settings = settings_from_run_config({"overrides": overrides, "run-dir": "r"})
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        f"{key} {path!r} is a relative path: the ServerApp takes it from the "
        f"SuperLink's working directory {superlink}, not from where `flwr run` was "
        "typed; give an absolute path to name another"
        for key, path in (
            ("task.train_files[0]", "a.csv"),
            ("task.train_files[1]", "b.csv"),
            ("task.test_file", "test.csv"),
            ("run-dir", "r"),
        )
    ]
    assert settings.task.test_file == str(superlink / "test.csv")
    assert settings.run_dir == str(superlink / "r")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=server_setup.__name__):
        absolute = f"task=files task.train_files=[{tmp_path}/a.csv] model=tiny"
        settings_from_run_config(
            {"overrides": f"{absolute} task.test_file={tmp_path}/t.csv", "run-dir": ""}
        )
    assert caplog.records == []


def test_flwr_run_overrides_that_lost_their_quotes_say_how_to_keep_them() -> None:
    # Labels with spaces, quoted for Hydra as `fedmodel simulate` takes them:
    # the split took the quotes away and Hydra's refusal said nothing of it.
    labels = '"Neoplasms (C00-D49)","Injury, poisoning (S00-T88)"'
    with pytest.raises(FedmodelError) as refused:
        settings_from_run_config(
            {"overrides": f"task=files task.labels=[{labels}]", "run-dir": ""}
        )
    said = str(refused.value)
    assert said.startswith("bad config override in ")
    assert said.endswith(server_setup.SPLIT_QUOTES)
    # The way it gives is one that composes, with both labels whole.
    example = server_setup.SPLIT_QUOTES.split("e.g. overrides=")[1]
    typed = example.strip("'").replace(
        "task=files", "task=files model=tiny num_clients=2", 1
    )
    settings = settings_from_run_config({"overrides": typed, "run-dir": ""})
    assert settings.task.labels == [
        "Neoplasms (C00-D49)",
        "Injury, poisoning (S00-T88)",
    ]
    # A refusal of words that had no quote to lose stays as it was.
    with pytest.raises(FedmodelError) as refused:
        settings_from_run_config({"overrides": "task.labels=[a,(b]", "run-dir": ""})
    assert server_setup.SPLIT_QUOTES not in str(refused.value)


def test_flwr_run_overrides_that_set_run_dir_are_refused_by_name() -> None:
    # settings_from_run_config replaces run_dir with run-dir's folder.
    with pytest.raises(FedmodelError) as refused:
        settings_from_run_config(
            {"overrides": "model=tiny run_dir=/elsewhere", "run-dir": "run"}
        )
    assert str(refused.value).startswith(
        "run_dir=/elsewhere: run_dir is set by the command to the folder it runs "
        "in, not by an override; under flwr run the run-config's run-dir names it"
    )


def _start(run: Path, *overrides: str) -> None:
    """A run's resolved config, as a start in the working directory writes it."""
    run.mkdir(exist_ok=True)
    write_resolved_config(run, small_settings(*overrides))


def test_a_resume_compares_the_files_its_paths_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    began, elsewhere, run = tmp_path / "began", tmp_path / "elsewhere", tmp_path / "run"
    began.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(began)
    _start(run, *FILES)
    check_run_folder(run, small_settings("resume=true", *FILES))
    # From another folder, the same paths name the same files...
    monkeypatch.chdir(elsewhere)
    same = (
        "task=files",
        "task.train_files=[../began/a.csv,../began/b.csv]",
        f"task.test_file={began / 'test.csv'}",
    )
    check_run_folder(run, small_settings("resume=true", *same))
    # ...and the command as typed in the first folder names others: refused,
    # naming the key and both absolute paths.
    with pytest.raises(FedmodelError) as refused:
        check_run_folder(run, small_settings("resume=true", *FILES))
    message = str(refused.value)
    assert "task.test_file=" in message and "task.train_files=" in message
    assert repr(str(elsewhere / "test.csv")) in message
    assert f"(the run's: {str(began / 'test.csv')!r})" in message


def _write_files(folder: Path) -> None:
    """Two site files and a test file, each one record naming its file."""
    folder.mkdir()
    for name in ("a.csv", "b.csv", "test.csv"):
        (folder / name).write_text(f"text,label\n{name} record,x\n")


def _files_in(folder: Path) -> tuple[str, ...]:
    return (
        "task=files",
        f"task.train_files=[{folder / 'a.csv'},{folder / 'b.csv'}]",
        f"task.test_file={folder / 'test.csv'}",
    )


def test_a_resume_takes_the_runs_data_files_moved_unchanged(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    _write_files(data)
    _start(run, *_files_in(data))
    moved = Path(shutil.move(data, tmp_path / "moved"))
    check_run_folder(run, small_settings("resume=true", *_files_in(moved)))
    # A file of another name, or other bytes, holds other records.
    (moved / "test.csv").rename(moved / "t.csv")
    renamed = (*_files_in(moved)[:2], f"task.test_file={moved / 't.csv'}")
    with pytest.raises(FedmodelError, match=r"task.test_file=.*t\.csv"):
        check_run_folder(run, small_settings("resume=true", *renamed))
    (moved / "t.csv").rename(moved / "test.csv")
    (moved / "b.csv").write_text("text,label\nanother record,x\n")
    with pytest.raises(
        FedmodelError, match=r"task.train_files=.*\(the run's: "
    ) as refused:
        check_run_folder(run, small_settings("resume=true", *_files_in(moved)))
    assert "a data file may be the run's moved elsewhere" in str(refused.value)
    # A run folder without the record compares the paths.
    (moved / "b.csv").write_text("text,label\nb.csv record,x\n")
    (run / TASK_FILE_HASHES).unlink()
    with pytest.raises(FedmodelError, match="task.train_files="):
        check_run_folder(run, small_settings("resume=true", *_files_in(moved)))


def test_a_resume_refuses_the_runs_data_file_rewritten_at_its_path(
    tmp_path: Path,
) -> None:
    # Compared by path alone, a file rewritten with other records passed:
    # under privacy=off (or central) no ledger's fingerprint noticed, and the
    # run went on training and evaluating on other records.
    data, run = tmp_path / "data", tmp_path / "run"
    _write_files(data)
    _start(run, "privacy=off", *_files_in(data))
    resumed = small_settings("resume=true", "privacy=off", *_files_in(data))
    check_run_folder(run, resumed)
    was = hashlib.sha256((data / "test.csv").read_bytes()).hexdigest()
    (data / "test.csv").write_text("text,label\nanother record,x\n")
    now = hashlib.sha256((data / "test.csv").read_bytes()).hexdigest()
    with pytest.raises(FedmodelError) as refused:
        check_run_folder(run, resumed)
    message = str(refused.value)
    assert f"task.test_file {str(data / 'test.csv')!r}, whose content (sha256 " in (
        message
    )
    assert f"(sha256 {now[:12]}) is not the run's (sha256 {was[:12]}, " in message
    assert message.endswith(
        "restore the run's file at that path, or start a new run in a new folder"
    )
    # One of train_files moved unchanged, another rewritten where it was.
    (data / "test.csv").write_text("text,label\ntest.csv record,x\n")
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(data / "a.csv", moved / "a.csv")
    (data / "b.csv").write_text("text,label\nanother record,x\n")
    partly = (
        "task=files",
        f"task.train_files=[{moved / 'a.csv'},{data / 'b.csv'}]",
        f"task.test_file={data / 'test.csv'}",
    )
    with pytest.raises(FedmodelError, match=r"with task\.train_files '.*b\.csv'"):
        check_run_folder(run, small_settings("resume=true", "privacy=off", *partly))


def test_a_data_file_that_cannot_be_read_or_was_not_recorded_is_not_compared(
    tmp_path: Path,
) -> None:
    # A deployed server need not hold the sites' files; an older run folder
    # kept no record: both resume as before, by path.
    data, run = tmp_path / "data", tmp_path / "run"
    _write_files(data)
    _start(run, "privacy=off", *_files_in(data))
    resumed = small_settings("resume=true", "privacy=off", *_files_in(data))
    (data / "a.csv").unlink()
    check_run_folder(run, resumed)
    (data / "a.csv").write_text("text,label\nanother record,x\n")
    (run / TASK_FILE_HASHES).unlink()
    check_run_folder(run, resumed)


@pytest.mark.parametrize("killed_at", [1, 2, 3])
def test_a_resume_killed_between_its_start_records_keeps_the_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, killed_at: int
) -> None:
    # A resume naming the run's files moved, killed at each of its writes:
    # the hashes, the earlier config's copy, the config. Before, the hashes
    # came after the config: killed between, the old paths' hashes stood
    # beside a config of the new ones, so the next move of the same files
    # was refused and a file rewritten at the new path was taken.
    data, run = tmp_path / "data", tmp_path / "run"
    _write_files(data)
    _start(run, "privacy=off", *_files_in(data))
    moved = Path(shutil.move(data, tmp_path / "moved"))
    resumed = small_settings("resume=true", "privacy=off", *_files_in(moved))
    check_run_folder(run, resumed)
    written: list[Path] = []

    def killed(path: Path, text: str) -> None:
        written.append(path)
        if len(written) == killed_at:
            raise KeyboardInterrupt
        write_durably(path, text)

    monkeypatch.setattr(server_setup, "write_durably", killed)
    monkeypatch.setattr(task_file_hashes, "write_durably", killed)
    with pytest.raises(KeyboardInterrupt):
        write_resolved_config(run, resumed)
    monkeypatch.undo()
    check_run_folder(run, resumed)
    (moved / "test.csv").write_text("text,label\nanother record,x\n")
    with pytest.raises(FedmodelError, match=r"task\.test_file.*test\.csv"):
        check_run_folder(run, resumed)
    (moved / "test.csv").write_text("text,label\ntest.csv record,x\n")
    again = Path(shutil.move(moved, tmp_path / "again"))
    check_run_folder(
        run, small_settings("resume=true", "privacy=off", *_files_in(again))
    )


@pytest.mark.parametrize("damage", [b"\xff\xfe", b"{cut", b"[]"])
def test_a_task_file_record_that_cannot_be_read_is_named(
    tmp_path: Path, damage: bytes
) -> None:
    # Read as none, the run's files moved unchanged were refused as other
    # records, with a hint that they may be moved: what the user had done.
    data, run = tmp_path / "data", tmp_path / "run"
    _write_files(data)
    _start(run, *_files_in(data))
    (run / TASK_FILE_HASHES).write_bytes(damage)
    moved = Path(shutil.move(data, tmp_path / "moved"))
    with pytest.raises(FedmodelError, match=f"^{run / TASK_FILE_HASHES} "):
        check_run_folder(run, small_settings("resume=true", *_files_in(moved)))


def test_an_older_run_with_relative_paths_resumes_from_its_start_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What fedmodel wrote before it stored paths absolute: as typed.
    began, run = tmp_path / "began", tmp_path / "run"
    began.mkdir()
    run.mkdir()
    monkeypatch.chdir(began)
    older = asdict(small_settings(*FILES))
    older["task"].update(train_files=["a.csv", "b.csv"], test_file="test.csv")
    (run / RESOLVED_CONFIG).write_text(yaml.safe_dump(older, sort_keys=False))
    check_run_folder(run, small_settings("resume=true", *FILES))
    other_test = (*FILES[:2], "task.test_file=t2.csv")
    with pytest.raises(FedmodelError) as refused:
        check_run_folder(run, small_settings("resume=true", *other_test))
    assert re.search(
        re.escape(f"task.test_file={str(began / 't2.csv')!r} (the run's: ")
        + re.escape(f"{str(began / 'test.csv')!r})"),
        str(refused.value),
    )
    # The resume rewrites the config, its files named absolute; the earlier
    # one differs in `resume` alone, not in the files, so none is kept.
    caplog.set_level(logging.WARNING, logger="fedmodel.federation.server_setup")
    write_resolved_config(run, small_settings("resume=true", *FILES))
    rewritten = yaml.safe_load((run / RESOLVED_CONFIG).read_text())
    assert rewritten["task"]["test_file"] == str(began / "test.csv")
    assert "differs" not in caplog.text
    assert not list(run.glob("resolved_config.*.yaml"))


def test_a_dot_dot_after_a_link_goes_up_from_where_the_link_leads(
    tmp_path: Path,
) -> None:
    # `data/../test.csv`, with data a link to real/inner, is real/test.csv to
    # the shell and to open(); dropping `data/..` by name named another file.
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "real" / "test.csv").write_text("text,label\n")
    (tmp_path / "data").symlink_to(tmp_path / "real" / "inner")
    raw = {"task": {"test_file": "data/../test.csv", "train_files": ["data/a.csv"]}}
    made = with_absolute_paths(raw, base=tmp_path)
    assert made["task"]["test_file"] == str(tmp_path.resolve() / "real" / "test.csv")
    assert made["task"]["train_files"] == [str(tmp_path / "data" / "a.csv")]


def test_a_kill_while_an_earlier_config_is_kept_leaves_a_whole_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The earlier start's config is copied aside before the new one replaces
    # it; before, it was renamed first, and a kill between the two left the
    # folder with no resolved config.
    run = tmp_path / "run"
    _start(run, "num_rounds=2")
    earlier = (run / RESOLVED_CONFIG).read_text()
    written: list[Path] = []

    def killed_at_the_second_write(path: Path, text: str) -> None:
        written.append(path)
        if len(written) == 2:
            raise KeyboardInterrupt
        write_durably(path, text)

    monkeypatch.setattr(server_setup, "write_durably", killed_at_the_second_write)
    with pytest.raises(KeyboardInterrupt):
        write_resolved_config(run, small_settings("num_rounds=3"))
    assert written == [run / "resolved_config.1.yaml", run / RESOLVED_CONFIG]
    assert (run / RESOLVED_CONFIG).read_text() == earlier
    assert (run / "resolved_config.1.yaml").read_text() == earlier


def test_a_plain_resume_keeps_no_copy_of_the_config_and_warns_of_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Only `resume` differs: each resume sets it. It used to log that the
    # config "differs in resume" and keep resolved_config.1.yaml every time.
    run = tmp_path / "run"
    _start(run, "num_rounds=2")
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        write_resolved_config(run, small_settings("num_rounds=2", "resume=true"))
    assert not list(run.glob("resolved_config.*.yaml"))
    assert "differs" not in caplog.text
    assert yaml.safe_load((run / RESOLVED_CONFIG).read_text())["resume"] is True
