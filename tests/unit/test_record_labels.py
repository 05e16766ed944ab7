"""A label set read from the sites' files names classes, never a record's text."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fedmodel.data import files, label_descriptions
from fedmodel.data.record_labels import MIN_RECORDS_ALONE, warn_lone_labels
from fedmodel.data.shared_texts import warn_shared_texts
from fedmodel.data.tasks import load_task
from fedmodel.errors import FedmodelError
from tests.unit.test_data_files import NORMALIZE, _csv, _run, _task
from tests.unit.test_text_loaders import _queries

NOTES = [f"pt {n} seen for chest pain radiating to the left arm" for n in range(8)]


def _site(path: Path, notes: list[str]) -> Path:
    rows = [(note, "cardio" if i % 2 else "ortho") for i, note in enumerate(notes)]
    return _csv(path, rows)


def test_swapped_columns_are_refused_naming_no_text(tmp_path: Path) -> None:
    # task.text_column=label task.label_column=text: each note would be a
    # class name in the server's log, the head's start and the exported
    # model's config, outside every epsilon.
    a = _site(tmp_path / "a.csv", NOTES[:4] + ["n4", "n5"])
    b = _site(tmp_path / "b.csv", NOTES[4:])
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    task = _task([a, b], test, text_column="label", label_column="text")
    with pytest.raises(FedmodelError) as info:
        load_task(task, seed=0)
    message = str(info.value)
    assert message.startswith(
        f"task.train_files[0]: file {a}: 6 of its 6 records hold a label in "
        "column 'text' that no other record of the task holds"
    )
    assert "swapped" in message and "task.labels" in message
    # Before: "the server logs it", which no log line of the run did.
    assert "the label set is public: the server holds it and the exported" in message
    assert not any(note in message for note in NOTES)


@pytest.mark.parametrize("swapped_in", ["task", "header"])
def test_a_tiny_site_with_swapped_columns_is_refused_naming_no_text(
    tmp_path: Path, swapped_in: str
) -> None:
    # Three records are too few for lone labels to tell: the swap shows by
    # its other half, class names in the text column. Swapped in the task's
    # two column keys (every file reads swapped) or in one site's header.
    site = _site(tmp_path / "site.csv", NOTES[:3])
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    if swapped_in == "task":
        task = _task([site], test, text_column="label", label_column="text")
        key, label_column, text_column = "task.train_files[0]", "text", "label"
    else:
        site.write_text(site.read_text().replace("text,label", "label,text", 1))
        other = _site(tmp_path / "other.csv", ["x1", "x2", "x3", "x4"])
        task = _task([other, site], test)
        key, label_column, text_column = "task.train_files[1]", "label", "text"
    with pytest.raises(FedmodelError) as info:
        load_task(task, seed=0)
    message = str(info.value)
    assert message.startswith(
        f"{key}: file {site}: 3 of its 3 records hold a label in column "
        f"{label_column!r} that no other record of the task holds, and a text "
        f"in column {text_column!r}"
    )
    assert "swapped" in message and "task.labels" in message
    assert "The label set is public (the server holds it and the exported" in message
    assert not any(word in message for word in [*NOTES, "cardio", "ortho"])


@pytest.mark.parametrize("notes", [NOTES[:6], NOTES[:3]])
def test_swapped_columns_at_two_sites_holding_one_export_are_refused(
    tmp_path: Path, notes: list[str]
) -> None:
    # Two sites holding copies of one export, read swapped: each note is held
    # by two rows, one record's copies, and passed for a class of two.
    site = _site(tmp_path / "a.csv", notes)
    copy = tmp_path / "b.csv"
    copy.write_text(site.read_text())
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    task = _task([site, copy], test, text_column="label", label_column="text")
    refused = (
        rf"^task\.train_files\[0\]: file .*a\.csv: {len(notes)} of its "
        f"{len(notes)} records hold a label in column 'text' that no other record"
    )
    with pytest.raises(FedmodelError, match=refused):
        load_task(task, seed=0)
    # Rare codes at a tiny site, copied to another, are still data.
    rare = _csv(tmp_path / "rare.csv", [(f"case {n}", f"rare {n}") for n in range(3)])
    twin = tmp_path / "twin.csv"
    twin.write_text(rare.read_text())
    kept = load_task(_task([site, rare, twin], test), seed=0).label_names
    assert len(kept) == 5


def test_a_legit_tiny_site_is_not_refused(tmp_path: Path) -> None:
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    a = _site(tmp_path / "a.csv", NOTES[:3])
    assert load_task(_task([a], test), seed=0).label_names == ("cardio", "ortho")
    # Each record a class of its own, or a text the test file holds too:
    # either alone is data.
    rare = [(f"case {n}", f"rare {n}") for n in range(3)]
    b = _csv(tmp_path / "b.csv", rare)
    assert len(load_task(_task([a, b], test), seed=0).label_names) == 5
    c = _csv(tmp_path / "c.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    assert len(load_task(_task([c], test), seed=0).label_names) == 2


def test_a_site_that_exported_notes_as_labels_is_named(tmp_path: Path) -> None:
    # Two sites label by class; the third wrote each note into its label
    # column too (its notes are what the other sites' texts are).
    a = _site(tmp_path / "a.csv", ["x1", "x2", "x3", "x4"])
    b = _site(tmp_path / "b.csv", ["y1", "y2", "y3", "y4"])
    c = _csv(tmp_path / "c.csv", [(note, note) for note in NOTES[:6]])
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    refused = r"^task\.train_files\[2\]: file .*c\.csv: 6 of its 6 records"
    with pytest.raises(FedmodelError, match=refused):
        load_task(_task([a, b, c], test), seed=0)


def test_rare_classes_and_classes_the_server_names_are_data(tmp_path: Path) -> None:
    alone = MIN_RECORDS_ALONE - 1
    rare = [(f"case {n}", f"rare {n}") for n in range(alone)]
    a = _csv(tmp_path / "a.csv", [*rare, ("x", "cardio"), ("y", "ortho")])
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    assert len(load_task(_task([a], test), seed=0).label_names) == alone + 2
    # One record per class, but the server's test file names every class.
    codes = [(f"case {n}", f"I{n}") for n in range(8)]
    b = _csv(tmp_path / "b.csv", codes)
    named = _csv(tmp_path / "named.csv", [(f"other {n}", f"I{n}") for n in range(8)])
    assert len(load_task(_task([b], named), seed=0).label_names) == 8
    # ... or the server's descriptions do; or the operator lists them.
    listed = [*(f"I{n}" for n in range(8)), "cardio", "ortho"]
    described = _csv(
        tmp_path / "labels.csv",
        [(label, f"block {label}") for label in listed],
        header="label,description",
    )
    task = _task([b], test, label_descriptions=str(described))
    # The test file's cardio and ortho are no classes: the test split chooses none.
    assert load_task(task, seed=0).label_names == tuple(listed[:8])
    assert len(load_task(_task([b], test, labels=listed), seed=0).label_names) == 10


def test_rare_classes_of_one_record_are_named_by_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: below the refusal's count, a label one record alone held became
    # a class of the public label set (the export's id2label), that record's
    # label leaving its site outside every epsilon, without a word.
    alone = MIN_RECORDS_ALONE - 1
    rare = [(f"case {n}", f"rare {n}") for n in range(alone)]
    a = _csv(tmp_path / "a.csv", [*rare, ("x", "cardio"), ("y", "ortho")])
    b = _csv(tmp_path / "b.csv", [("z", "cardio"), ("w", "ortho")])
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    task = _task([a, b], test)
    data = load_task(task, seed=0)
    with caplog.at_level("WARNING", logger="fedmodel"):
        warn_lone_labels(task, data)
    assert [r.getMessage() for r in caplog.records] == [
        f"task.train_files[0] ({a}): {alone} of its {alone + 2} records hold a "
        "label that no other record of the task holds. The label set is public "
        "(the server holds it and the exported model names its classes by it), "
        "so such a record's label leaves the site outside every epsilon (nor can "
        "DP-SGD learn a class from one record). If these classes are public, list "
        "the labels in task.labels; if not, remove those records or give them a "
        "wider class"
    ]
    # Named by the test file or the descriptions, they are still classes
    # only because those records hold them (the test split chooses no class,
    # and descriptions may name labels the task has not): said the same.
    caplog.clear()
    named = _csv(tmp_path / "named.csv", [*rare, ("hip", "ortho")])
    described = _csv(
        tmp_path / "labels.csv",
        [(y, f"block {y}") for y in [*(y for _, y in rare), "cardio", "ortho"]],
        header="label,description",
    )
    with caplog.at_level("WARNING", logger="fedmodel"):
        for task in (
            _task([a, b], named),
            _task([a, b], test, label_descriptions=str(described)),
        ):
            warn_lone_labels(task, load_task(task, seed=0))
    assert len(caplog.records) == 2
    # Listed by the operator, or held by the server's validation file, they
    # are public: nothing to say.
    caplog.clear()
    with caplog.at_level("WARNING", logger="fedmodel"):
        listed = _task([a, b], test, labels=[*(y for _, y in rare), "cardio", "ortho"])
        warn_lone_labels(listed, load_task(listed, seed=0))
        held = _task([a, b], test, validation_file=str(named))
        warn_lone_labels(held, load_task(held, seed=0))
    assert not caplog.records


def test_the_descriptions_file_is_read_once_for_the_check_and_the_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The labels it names count against a site's lone labels, and each label
    # needs its description: both from one read, so both judge the same rows.
    a = _site(tmp_path / "a.csv", ["x1", "x2", "x3", "x4"])
    test = _csv(tmp_path / "test.csv", [("chest pain", "cardio"), ("hip", "ortho")])
    described = _csv(
        tmp_path / "labels.csv",
        [("cardio", "heart"), ("ortho", "bones")],
        header="label,description",
    )
    reads: Counter[str] = Counter()
    read_table = files.read_table

    def counted(path: Path, **kwargs: Any) -> Any:
        reads[Path(path).name] += 1
        return read_table(path, **kwargs)

    for module in (files, label_descriptions):
        monkeypatch.setattr(module, "read_table", counted)
    load_task(_task([a], test, label_descriptions=str(described)), seed=0)
    assert reads[described.name] == 1


def test_the_start_reads_each_split_of_the_sites_records_in_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a query per record and column, as the columns were read lazily:
    # 0.27 s (label check) and 0.18 s (shared texts) of every files-task
    # start for HWU64's 7,712 records at four sites.
    sites = [
        _csv(
            tmp_path / f"{site}.csv",
            [(f"{site} note {n}", f"c{n % 3}") for n in range(40)],
        )
        for site in "ab"
    ]
    test = _csv(tmp_path / "test.csv", [(f"test {n}", f"c{n % 3}") for n in range(9)])
    server = _csv(
        tmp_path / "server.csv", [(f"held {n}", f"c{n % 2}") for n in range(6)]
    )
    task = _task(sites, test, validation_file=str(server))
    data = load_task(task, seed=0)
    queries = _queries(monkeypatch)
    warn_lone_labels(task, data)
    # The server's split and the sites'.
    assert len(queries) == 2
    queries.clear()
    warn_shared_texts(_run(task), data, normalize=NORMALIZE)
    # The sites', the server's and the test split.
    assert len(queries) == 3
