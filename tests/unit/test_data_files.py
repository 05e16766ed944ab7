import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from transformers import PreTrainedTokenizerBase

from fedmodel.config import (
    ModelSettings,
    RunSettings,
    TaskSettings,
    compose_config,
    settings_from_dict,
)
from fedmodel.data.file_roles import (
    check_transfer_file,
    client_file,
    warn_pooled_files,
)
from fedmodel.data.label_warnings import warn_labels
from fedmodel.data.scored_labels import warn_test_only_labels
from fedmodel.data.shared_texts import warn_shared_texts
from fedmodel.data.splits import TaskData, build_split
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from fedmodel.federation import preflight
from fedmodel.model.load import load_tokenizer, text_normalizer
from tests.conftest import group_settings

# What the tiny model's tokenizer (MiniLM's, uncased) makes of a text.
NORMALIZE = text_normalizer(load_tokenizer(group_settings("model", "tiny")))


def _csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    lines = [header, *(f"{text},{label}" for text, label in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _task(train: list[Path], test: Path | None, **kwargs: object) -> TaskSettings:
    task: TaskSettings = group_settings(
        "task",
        "files",
        train_files=[str(p) for p in train],
        test_file=None if test is None else str(test),
        split_seed=None,
        **kwargs,
    )
    return task


def _run(task: TaskSettings, transfer_file: Path | None = None) -> RunSettings:
    """Settings of a run of `task`, distilling on `transfer_file` if given."""
    settings = settings_from_dict(compose_config(["task=files", "num_clients=1"]))
    name = None if transfer_file is None else str(transfer_file)
    distill = replace(settings.distill, transfer_file=name)
    return replace(settings, task=task, distill=distill)


@pytest.fixture
def server_csv(tmp_path: Path) -> Path:
    return _csv(tmp_path / "test.csv", [("good", "pos"), ("bad", "neg")])


def test_loads_csv_jsonl_parquet_with_sites(tmp_path: Path, server_csv: Path) -> None:
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    b = tmp_path / "b.jsonl"
    b.write_text(
        "\n".join(json.dumps({"text": t, "label": y}) for t, y in [("ok", "pos")])
    )
    c = tmp_path / "c.parquet"
    pd.DataFrame({"text": ["meh", "bad"], "label": ["neutral", "neg"]}).to_parquet(c)
    data = load_task(_task([a, b, c], server_csv), seed=0)
    assert data.label_names == ("neg", "neutral", "pos")
    assert data.train["site"] == [0, 0, 1, 2, 2]
    assert data.test["site"] == [-1, -1]
    assert data.train["label"] == [2, 0, 2, 1, 0]
    assert data.transfer is None


def test_numeric_labels_match_across_formats(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", [("x", "1"), ("y", "0")])
    b = tmp_path / "b.jsonl"
    b.write_text('{"text": "z", "label": 1}\n\n{"text": "w", "label": 0}\n')
    data = load_task(_task([a], b), seed=0)
    assert data.label_names == ("0", "1")


def test_given_labels_fix_order_and_reject_others(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", [("x", "pos"), ("y", "neg"), ("z", "maybe")])
    test = _csv(tmp_path / "t.csv", [("x", "pos")])
    site = _csv(tmp_path / "s.csv", [("x", "pos"), ("y", "neg")])
    data = load_task(_task([site], test, labels=["pos", "neg"]), seed=0)
    assert data.label_names == ("pos", "neg")
    with pytest.raises(FedmodelError) as info:
        load_task(_task([a], test, labels=["pos", "neg"]), seed=0)
    message = str(info.value)
    assert "a.csv" in message and "row 3" in message and "'maybe'" in message
    # The key too, as the task's other file errors give it (found by the walk).
    assert message.startswith(f"task.train_files[0]: file {a}, row 3")
    # The line an editor shows beside the row, as a bad cell's message gives
    # it: row 3 starts on line 4 here, after the header.
    assert "row 3 (records counted from 1, not lines" in message
    assert "), starting on line 4 of the file, column 'label'" in message


def test_label_not_in_task_labels_names_the_line_a_note_starts_on(
    tmp_path: Path,
) -> None:
    # A quoted note with line breaks: record 2 starts on line 5, not line 3.
    a = tmp_path / "a.csv"
    a.write_text('text,label\n"one\ntwo\nthree",pos\nx,maybe\n', encoding="utf-8")
    test = _csv(tmp_path / "t.csv", [("x", "pos")])
    with pytest.raises(FedmodelError) as info:
        load_task(_task([a], test, labels=["pos", "neg"]), seed=0)
    assert "row 2 (" in str(info.value)
    assert "starting on line 5 of the file" in str(info.value)


def test_missing_file(tmp_path: Path, server_csv: Path) -> None:
    with pytest.raises(FedmodelError, match=r"task.train_files\[0\].*nope.csv"):
        load_task(_task([tmp_path / "nope.csv"], server_csv), seed=0)
    # The path is absolute already: it is not said twice. Only a link can
    # lead elsewhere, and then where it leads is said.
    with pytest.raises(FedmodelError) as info:
        load_task(_task([tmp_path / "nope.csv"], server_csv), seed=0)
    assert str(info.value).startswith(
        f"task.train_files[0]: file {tmp_path / 'nope.csv'} does not exist; fix"
    )
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FedmodelError) as info:
        load_task(_task([tmp_path / "link" / "nope.csv"], server_csv), seed=0)
    assert str(info.value).startswith(
        f"task.train_files[0]: file {tmp_path / 'link' / 'nope.csv'} does not "
        f"exist (resolved to {tmp_path / 'elsewhere' / 'nope.csv'}); fix"
    )


def test_a_pattern_for_the_test_file_is_said_to_work_only_for_sites(
    tmp_path: Path, server_csv: Path
) -> None:
    site = _csv(tmp_path / "site.csv", [("fine", "pos"), ("awful", "neg")])
    with pytest.raises(FedmodelError) as info:
        load_task(_task([site], tmp_path / "tes*.csv"), seed=0)
    assert "task.test_file: file" in str(info.value)
    assert "only task.train_files takes patterns" in str(info.value)
    with pytest.raises(FedmodelError) as info:
        load_task(_task([site], tmp_path / "nope.csv"), seed=0)
    assert "patterns" not in str(info.value)


def test_unsupported_suffix(tmp_path: Path, server_csv: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(FedmodelError, match=r"data.xlsx.*'.xlsx'"):
        load_task(_task([path], server_csv), seed=0)


def test_not_utf8(tmp_path: Path, server_csv: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,pos\ncaf\xe9,neg\n".encode("latin-1"))
    with pytest.raises(FedmodelError, match=r"latin.csv is not UTF-8.*line 3"):
        load_task(_task([path], server_csv), seed=0)


def test_unparseable_csv_and_jsonl(tmp_path: Path, server_csv: Path) -> None:
    csv = tmp_path / "broken.csv"
    csv.write_text('text,label\n"unterminated,pos\n')
    with pytest.raises(FedmodelError, match="broken.csv, line 2 is not valid CSV"):
        load_task(_task([csv], server_csv), seed=0)
    csv.write_text("text,label\na,pos\nb,neg,extra\n")
    with pytest.raises(FedmodelError, match="broken.csv, line 3 has 3 field") as info:
        load_task(_task([csv], server_csv), seed=0)
    assert "\n" not in str(info.value)
    jsonl = tmp_path / "broken.jsonl"
    jsonl.write_text('{"text": "a", "label": "pos"}\n{"text": \n')
    with pytest.raises(FedmodelError, match="broken.jsonl, line 2 is not valid JSON"):
        load_task(_task([jsonl], server_csv), seed=0)
    parquet = tmp_path / "broken.parquet"
    parquet.write_bytes(b"not parquet at all")
    with pytest.raises(FedmodelError, match="broken.parquet is not a readable"):
        load_task(_task([parquet], server_csv), seed=0)


def test_missing_columns_are_listed(tmp_path: Path, server_csv: Path) -> None:
    path = _csv(tmp_path / "a.csv", [("x", "pos")], header="sentence,label")
    with pytest.raises(FedmodelError) as info:
        load_task(_task([path], server_csv), seed=0)
    message = str(info.value)
    assert "a.csv" in message and "'text'" in message and "'sentence'" in message
    with pytest.raises(FedmodelError, match=r"label column 'y'.*\['text', 'label'\]"):
        site = _csv(tmp_path / "b.csv", [("x", "pos")])
        load_task(_task([site], server_csv, label_column="y"), seed=0)


def test_empty_and_null_texts_name_rows(tmp_path: Path, server_csv: Path) -> None:
    path = _csv(tmp_path / "a.csv", [("x", "pos"), ("", "neg"), ("  ", "pos")])
    with pytest.raises(FedmodelError, match=r"a.csv.*'text' at rows 2, 3"):
        load_task(_task([path], server_csv), seed=0)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"text": "a", "label": "pos"}\n{"text": null, "label": "x"}\n')
    with pytest.raises(FedmodelError, match=r"b.jsonl.*row 2"):
        load_task(_task([jsonl], server_csv), seed=0)
    parquet = tmp_path / "c.parquet"
    pd.DataFrame({"text": ["a", None], "label": ["pos", "neg"]}).to_parquet(parquet)
    with pytest.raises(FedmodelError, match=r"c.parquet.*row 2"):
        load_task(_task([parquet], server_csv), seed=0)


def test_null_label_names_row(tmp_path: Path, server_csv: Path) -> None:
    path = _csv(tmp_path / "a.csv", [("x", "pos"), ("y", "")])
    with pytest.raises(FedmodelError, match=r"a.csv.*label.*'label' at row 2"):
        load_task(_task([path], server_csv), seed=0)


def test_file_without_rows(tmp_path: Path, server_csv: Path) -> None:
    header_only = _csv(tmp_path / "h.csv", [])
    with pytest.raises(FedmodelError, match="h.csv has no rows"):
        load_task(_task([header_only], server_csv), seed=0)
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(FedmodelError, match="e.csv is empty"):
        load_task(_task([empty], server_csv), seed=0)
    blank = tmp_path / "b.jsonl"
    blank.write_text("\n")
    with pytest.raises(FedmodelError, match="b.jsonl has no rows"):
        load_task(_task([blank], server_csv), seed=0)


def test_no_train_files_or_test_file(tmp_path: Path, server_csv: Path) -> None:
    with pytest.raises(FedmodelError, match="task.train_files is empty"):
        load_task(_task([], server_csv), seed=0)
    with pytest.raises(FedmodelError, match="task.test_file is not set"):
        load_task(_task([server_csv], None), seed=0)
    with pytest.raises(FedmodelError, match=r"task.test_file.*missing.csv"):
        load_task(_task([server_csv], tmp_path / "missing.csv"), seed=0)


def test_a_file_in_two_roles_is_refused_naming_both(
    tmp_path: Path, server_csv: Path
) -> None:
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    b = _csv(tmp_path / "b.csv", [("so so", "pos"), ("dire", "neg")])
    server = _csv(tmp_path / "server.csv", [("grand", "pos"), ("grim", "neg")])
    same_a = str(tmp_path / "." / "a.csv")  # another spelling of one path
    cases = [
        (
            _task([a, b, Path(same_a)], server_csv),
            r"train_files\[2\].*train_files\[0\].*twice the epsilon",
        ),
        (_task([a, b], a), r"task.test_file=.*train_files\[0\].*no site trains on"),
        (
            _task([a, b], server_csv, validation_file=str(b)),
            r"task.validation_file=.*train_files\[1\].*gives the server that site",
        ),
        (
            _task([a, b], server_csv, validation_file=str(server_csv)),
            r"task.validation_file=.*task.test_file.*never chooses",
        ),
    ]
    for task, message in cases:
        with pytest.raises(FedmodelError, match=message):
            load_task(task, seed=0)
    data = load_task(_task([a, b], server_csv, validation_file=str(server)), seed=0)
    assert data.transfer is not None and len(data.transfer) == 2


def test_a_server_file_sharing_texts_with_a_site_is_named(
    tmp_path: Path, server_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    b = _csv(tmp_path / "b.csv", [("so so", "pos"), ("dire", "neg"), ("meh", "neg")])
    cut = _csv(tmp_path / "cut.csv", [("dire", "neg"), ("meh", "neg"), ("new", "pos")])
    task = _task([a, b], server_csv, validation_file=str(cut))
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        data = load_task(task, seed=0)
        # Loading alone (what every client process does) says nothing: the
        # server names it, once per run.
        assert not caplog.records
        warn_shared_texts(_run(task), data, normalize=NORMALIZE)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1, warned
    assert "2 of the 3 records of task.train_files[1]" in warned[0]
    assert ") have a text" in warned[0]
    assert "b.csv" in warned[0] and "cut.csv" in warned[0]
    assert "task.validation_file" in warned[0]


def test_a_sites_file_is_not_the_servers_distillation_texts(
    tmp_path: Path, server_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    b = _csv(tmp_path / "b.csv", [("so so", "pos"), ("dire", "neg")])
    task = _task([a, b], server_csv)
    for named, message in (
        (tmp_path / "." / "b.csv", r"same file as task.train_files\[1\]: .*that site"),
        (server_csv, r"same file as task.test_file: the student would train on"),
    ):
        with pytest.raises(FedmodelError, match=message):
            check_transfer_file(_run(task, transfer_file=named))
    texts = tmp_path / "texts.txt"
    texts.write_text("a new text\ndire\n")  # one of site 1's texts
    run = _run(task, transfer_file=texts)
    check_transfer_file(run)  # the server's own file: it may distil on it
    read = ["a new text", "dire"]
    texts.unlink()  # the warning takes the texts the check before round 1 read
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        data = load_task(task, seed=0)
        warn_shared_texts(run, data, normalize=NORMALIZE, distill_texts=read)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert "1 of the 2 records of task.train_files[1]" in warned
    assert ") has a text" in warned
    assert "distill.transfer_file" in warned and "distils the student" in warned


def test_sites_sharing_texts_are_named(
    tmp_path: Path, server_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    b = _csv(tmp_path / "b.csv", [("so so", "pos"), ("awful", "neg")])
    c = _csv(tmp_path / "c.csv", [("awful", "neg"), ("fine day", "pos"), ("x", "pos")])
    task = _task([a, b, c], server_csv)
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        warn_shared_texts(_run(task), load_task(task, seed=0), normalize=NORMALIZE)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # Each later file is named against the first that holds the text.
    assert len(warned) == 2, warned
    assert warned[0].startswith("task.train_files[1] (")
    assert "holds 1 record with a text that task.train_files[0]" in warned[0]
    assert "added up" in warned[0]
    assert warned[1].startswith("task.train_files[2] (")
    assert "holds 2 records with a text that" in warned[1]
    caplog.clear()
    d = _csv(tmp_path / "d.csv", [("new", "pos")])
    task = _task([a, d], server_csv)
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        warn_shared_texts(_run(task), load_task(task, seed=0), normalize=NORMALIZE)
    assert not caplog.records


def test_texts_the_tokenizer_reads_alike_are_one_text(
    tmp_path: Path, server_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An uncased tokenizer gives `Fine  day` and `fine day` the same tokens,
    # and `Café au lait` and `cafe AU lait`: the model trains on one record.
    a = _csv(tmp_path / "a.csv", [("Fine  day", "pos"), ("awful  day", "neg")])
    b = _csv(
        tmp_path / "b.csv",
        [
            ("fine day", "pos"),
            ("awful day", "neg"),
            ("Café au lait", "neg"),
            ("cafe AU\tlait", "neg"),
        ],
    )
    task = _task([a, b], server_csv)
    data = load_task(task, seed=0)
    assert data.train["text"][0] == "Fine  day"  # trained on as written
    assert NORMALIZE("Café AU") == "cafe au"
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        warn_shared_texts(_run(task), data, normalize=NORMALIZE)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2, warned
    assert warned[0].startswith("task.train_files[1] (")
    assert "holds 1 record repeating the text of another" in warned[0]
    assert warned[1].startswith("task.train_files[1] (")
    assert "holds 2 records with a text that task.train_files[0]" in warned[1]
    assert "added up" in warned[1]
    caplog.clear()
    # A cased tokenizer (no normalizer: texts as written) keeps case apart,
    # and still reads a run of spaces or a tab as one space.
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        warn_shared_texts(_run(task), data, normalize=lambda text: text)
    (warned_cased,) = [r.getMessage() for r in caplog.records]
    assert warned_cased.startswith("task.train_files[1] (")
    assert "holds 1 record with a text that task.train_files[0]" in warned_cased


def test_the_server_loads_a_tokenizer_only_for_records_with_sites(
    tmp_path: Path,
    server_csv: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sites' texts are compared as the tokenizer reads them. Records without
    # sites (bank, hospital) have none to compare: no tokenizer is loaded for
    # them (the global model loads its own).
    loaded: list[str] = []

    def counted(model: ModelSettings) -> PreTrainedTokenizerBase:
        loaded.append(model.path)
        return load_tokenizer(model)

    monkeypatch.setattr(preflight, "load_tokenizer", counted)
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    b = _csv(tmp_path / "b.csv", [("fine day", "pos"), ("dire", "neg")])
    files = _task([a, b], server_csv)
    data = load_task(files, seed=0)
    assert data.has_sites
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        preflight.warn_about_records(_run(files), data, distill_texts=None)
    assert len(loaded) == 1 and "task.train_files[0]" in caplog.text
    loaded.clear()
    names = ["neg", "pos"]
    no_sites = TaskData(
        train=build_split(["fine day", "fine day"], [1, 1], label_names=names),
        test=build_split(["good", "bad"], [1, 0], label_names=names),
        transfer=None,
        label_names=tuple(names),
    )
    assert not no_sites.has_sites
    bank = settings_from_dict(compose_config([]))
    preflight.warn_about_records(bank, no_sites, distill_texts=None)
    assert loaded == []


def test_pooling_a_files_tasks_files_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = ["task=files", "task.train_files=[a.csv,b.csv,c.csv]"]
    with caplog.at_level("WARNING", logger="fedmodel.data.file_roles"):
        warn_pooled_files(settings_from_dict(compose_config(files)))
        warn_pooled_files(
            settings_from_dict(compose_config([*files, "partition=natural"]))
        )
        assert not caplog.records  # one client per file: nothing to say
        pooled = [*files, "partition=iid", "num_clients=2"]
        warn_pooled_files(settings_from_dict(compose_config(pooled)))
    (warned,) = [r.getMessage() for r in caplog.records]
    assert "partition=iid: the 3 files of task.train_files are pooled" in warned
    assert "to 2 clients" in warned


def test_a_deployments_server_lists_no_files_and_nothing_is_said() -> None:
    # Each site holds its own file: the server's task.train_files is empty.
    deployed = settings_from_dict(
        compose_config(
            [
                "federation=deployment",
                "task=files",
                "task.test_file=t.csv",
                "task.labels=[a,b]",
                "num_clients=2",
            ]
        )
    )
    warn_pooled_files(deployed)
    assert client_file(deployed, 0) is None


def test_test_labels_no_record_trains_are_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    test = _csv(tmp_path / "t.csv", [("good", "pos"), ("odd", "weird")])
    with caplog.at_level("WARNING", logger="fedmodel"):
        data = load_task(_task([a], test), seed=0)
        assert not caplog.records  # every process loads; the server names it
        warn_test_only_labels(data)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned == (
        "1 label of the test file is no class of the model, as no training or "
        "validation record holds it (the test split chooses no class): "
        "['weird']. 1 of its 2 records holds it and counts as an error in the "
        "test accuracy and macro-F1. Add training records of it, or leave it "
        "out of the test file"
    )
    caplog.clear()
    rows = [("good", "pos"), ("x", "odd"), ("y", "new"), ("z", "new")]
    test = _csv(tmp_path / "t2.csv", rows)
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_test_only_labels(load_task(_task([a], test), seed=0))
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.startswith(
        "2 labels of the test file are no class of the model, as no training or "
        "validation record holds them (the test split chooses no class): "
        "['new', 'odd']. 3 of its 4 records hold them and count as errors"
    )
    # A class task.labels lists and only the test file holds: the model has
    # it and cannot learn it.
    caplog.clear()
    listed = load_task(_task([a], test, labels=["pos", "neg", "odd", "new"]), seed=0)
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_test_only_labels(listed)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned == (
        "2 labels of the test file no training record has, so the model cannot "
        "learn them and every test record of them counts as an error: ['new', "
        "'odd']. Add training records of them, or leave them out of the test file"
    )
    # A deployment's server holds no training record: it cannot tell.
    caplog.clear()
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_test_only_labels(replace(listed, train=listed.train.select([])))
    assert not caplog.records


def test_test_labels_that_write_a_class_another_way_are_named_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A test file exported apart wrote the sites' codes as floats: every test
    # record was an error, and the line said to add training records of '3.0'.
    a = _csv(tmp_path / "a.csv", [("fine day", "3"), ("awful", "10"), ("so", "Pos")])
    rows = [("good", "3.0"), ("bad", "10.0"), ("meh", "pos"), ("odd", "7")]
    test = _csv(tmp_path / "t.csv", rows)
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_test_only_labels(load_task(_task([a], test), seed=0))
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.endswith(
        "4 of its 4 records hold them and count as errors in the test accuracy "
        "and macro-F1. '10.0' (the class '10'), '3.0' (the class '3'), 'pos' "
        "(the class 'Pos') are classes of the model written another way (a "
        "number written as a float or zero-padded, or another letter case or "
        "spacing): write the test file's labels as the training files write "
        "them; for the others, add training records of it, or leave it out of "
        "the test file"
    )


def test_a_test_file_coded_otherwise_is_named_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A team's test file coded 0, 1, 2 beside sites' names: every record an
    # error, and the line said to add training records of '0', '1' and '2'.
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    test = _csv(tmp_path / "t.csv", [("good", "0"), ("bad", "1"), ("meh", "1")])
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_test_only_labels(load_task(_task([a], test), seed=0))
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.endswith(
        "3 of its 3 records hold them and count as errors in the test accuracy "
        "and macro-F1. The test file most likely codes its labels another way "
        "than the training files (codes in one, names in the other, or another "
        "code list), as none of its records holds a class of the model. Write "
        "the test file's labels as the training files write them, the classes "
        "['neg', 'pos']"
    )


def test_labels_that_read_as_a_missing_value_are_named_with_their_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A label cell left empty in the source, exported as 'NA' or 'null', was
    # trained as a class without a word: the model learnt to answer 'missing'.
    rows = [("fine", "pos"), ("awful", "NA"), ("odd", "NA"), ("x", "null")]
    a = _csv(tmp_path / "a.csv", [*rows, ("none at all", "Nausea"), ("y", "-")])
    test = _csv(tmp_path / "t.csv", [("good", "pos"), ("meh", "NA")])
    with caplog.at_level("WARNING", logger="fedmodel.data.label_warnings"):
        warn_labels(load_task(_task([a], test), seed=0))
    warned = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert warned == [
        "the labels '-' (1 record), 'NA' (3 records), 'null' (1 record) read "
        "like a missing value exported as text, yet each is a class of the "
        "model (every label but a blank cell or 'NaN' is read as written). A "
        "class made of records without a label trains the model to answer "
        "'missing': if they have none, fill their labels in or remove them; if "
        "the classes are meant, leave them"
    ]


def test_labels_of_task_labels_that_no_record_holds_are_named(
    tmp_path: Path, server_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: task.labels=[pos, neg, Skin] with no record of 'Skin' in any
    # file gave a model and an export with a class 'Skin', without a word.
    a = _csv(tmp_path / "a.csv", [("fine day", "pos"), ("awful", "neg")])
    data = load_task(_task([a], server_csv, labels=["pos", "neg", "Skin"]), seed=0)
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_labels(data)
    assert [r.getMessage() for r in caplog.records] == [
        "1 label of task.labels that no site's, test or validation record of the "
        "run holds, so no site trains it and no test record scores it, yet the "
        "model and its export hold it as a class: ['Skin']. Leave it out of "
        "task.labels, or give the sites records of it"
    ]
    # A deployment's server holds no site record: it cannot tell, but its
    # test file scores no 'Skin'.
    caplog.clear()
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_labels(replace(data, train=data.train.select([])))
    assert [r.getMessage() for r in caplog.records] == [
        "1 of the model's 3 classes has no record in the test file, so the test "
        "accuracy and macro-F1 score only the other 2: ['Skin']. Add test "
        "records of each class to score them all"
    ]


def test_classes_the_test_file_lacks_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # On the loopback walk a deployment's test file held records of one of
    # its 3 labels: the first round scored 1.0000 accuracy and macro-F1 on a
    # tiny random model, with not a word that 2 classes went unscored.
    a = _csv(tmp_path / "a.csv", [("fine", "pos"), ("awful", "neg"), ("so so", "mid")])
    one = _csv(tmp_path / "t.csv", [("good", "pos"), ("nice", "pos")])
    for train in ([a], []):  # a simulation's server, a deployment's
        caplog.clear()
        task = _task(train, one, labels=["pos", "neg", "mid"])
        with caplog.at_level("WARNING", logger="fedmodel"):
            warn_labels(load_task(task, seed=0))
        assert [r.getMessage() for r in caplog.records] == [
            "2 of the model's 3 classes have no record in the test file, so the "
            "test accuracy and macro-F1 score only the other 1: ['neg', 'mid']. "
            "Add test records of each class to score them all"
        ]
    # A test file of none (codes where the sites write names): it read
    # "score only the other 0".
    caplog.clear()
    codes = _csv(tmp_path / "c.csv", [("good", "1"), ("bad", "2")])
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_labels(load_task(_task([a], codes), seed=0))
    assert (
        "3 of the model's 3 classes have no record in the test file, so the "
        "test accuracy and macro-F1 score none of them: ['mid', 'neg', 'pos']. "
        "Add test records of each class to score them all"
    ) in [r.getMessage() for r in caplog.records]
    # A test file of every class: nothing to say.
    caplog.clear()
    every = _csv(tmp_path / "e.csv", [("good", "pos"), ("bad", "neg"), ("meh", "mid")])
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_labels(load_task(_task([a], every), seed=0))
    assert not caplog.records


@pytest.mark.parametrize("labels", [None, ["pos", "neg"]])
def test_training_files_of_one_label_are_refused_whatever_the_server_holds(
    tmp_path: Path, labels: list[str] | None
) -> None:
    # The validation file's second label counted as trained: the run went
    # ahead with a warning, and its classifier learned one label.
    a = _csv(tmp_path / "a.csv", [("x", "pos"), ("y", "pos")])
    b = _csv(tmp_path / "b.csv", [("z", "pos")])
    held = _csv(tmp_path / "held.csv", [("u", "pos"), ("v", "neg")])
    test = _csv(tmp_path / "t.csv", [("w", "pos"), ("q", "neg")])
    task = _task([a, b], test, validation_file=str(held), labels=labels)
    with pytest.raises(FedmodelError) as refused:
        load_task(task, seed=0)
    assert str(refused.value) == (
        f"the training files (task.train_files) {[str(a), str(b)]} hold only the "
        "label ['pos'] in column 'label': a classifier trained on them learns no "
        "other, whatever task.labels, task.validation_file or task.test_file "
        "hold. Add records of at least one other label to a training file"
    )
