"""A site's own files as they come: the variants that must be refused or named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data.label_descriptions import described_labels
from fedmodel.data.label_warnings import warn_labels, warn_similar_labels
from fedmodel.data.shared_texts import warn_shared_texts
from fedmodel.data.tasks import load_task
from fedmodel.data.text_inputs import read_input_texts
from fedmodel.errors import FedmodelError
from tests.unit.test_data_files import NORMALIZE, _task


@pytest.fixture
def rows(bank_rows: tuple[pd.DataFrame, list[str]]) -> pd.DataFrame:
    """Real Banking77 records in the default columns, `text` and `label`."""
    return bank_rows[0].rename(columns={"note": "text", "intent": "label"})


@pytest.fixture
def test_csv(tmp_path: Path, rows: pd.DataFrame) -> Path:
    """The last 20 records, as the server's test file."""
    path = tmp_path / "test.csv"
    rows.tail(20).to_csv(path, index=False)
    return path


@pytest.fixture
def site_csv(tmp_path: Path, rows: pd.DataFrame) -> Path:
    """The first 80 records, as a site's file."""
    path = tmp_path / "site0.csv"
    rows.head(80).to_csv(path, index=False)
    return path


def test_an_unquoted_comma_in_every_text_is_refused_not_shifted(
    tmp_path: Path, test_csv: Path
) -> None:
    # pandas reads a first record with one field too many as an index: with
    # a comma in every text, each label would silently be a text's first half.
    site = tmp_path / "notes.csv"
    site.write_text(
        "label,text\ngastro,pain, nausea and vomiting\ncardio,chest pain, left\n"
    )
    with pytest.raises(FedmodelError) as info:
        load_task(_task([site], test_csv, label_column="label"), seed=0)
    message = str(info.value)
    assert message.startswith("task.train_files[0]: file")
    assert "notes.csv, line 2 has 3 fields but the header has 2" in message
    assert "double quotes" in message


def test_a_quote_left_open_is_named_on_the_line_it_opens(
    tmp_path: Path, rows: pd.DataFrame, test_csv: Path
) -> None:
    # A quote opened on line 5 and not closed reads the lines after it as one
    # text; the error named only the line csv stopped at (the file's last, or
    # where a later quote closed it), where nothing is wrong.
    lines = [
        f"{text.replace(',', ' ')},{label}" for text, label in rows.head(40).values
    ]
    lines[3] = '"' + lines[3]
    site = tmp_path / "site0.csv"
    opened = "where a quoted field opens and runs on to line {}; check the quoting"
    for later, said in (
        ("", "line 41 is not valid CSV (unexpected end of data): its record starts"),
        ('sent home",x,y', "line 21 has 3 fields but the header has 2 (['text', "),
    ):
        if later:
            lines[19] = later
        site.write_text("text,label\n" + "\n".join(lines) + "\n")
        with pytest.raises(FedmodelError) as info:
            load_task(_task([site], test_csv), seed=0)
        message = str(info.value)
        assert f"site0.csv, {said}" in message
        stop = said.split()[1]
        assert f"on line 5, {opened.format(stop)} on line 5" in message
    # A record of one line keeps the message it had.
    site.write_text('text,label\nfine,pos\n"bad"x,neg\n')
    with pytest.raises(
        FedmodelError, match=r"line 3 is not valid CSV \(.*\); check its"
    ):
        load_task(_task([site], test_csv), seed=0)


def test_a_tsv_file_reads_as_its_csv_and_by_the_same_rules(
    tmp_path: Path, rows: pd.DataFrame, site_csv: Path, test_csv: Path
) -> None:
    # A spreadsheet's "tab-delimited text" export: a text with a tab or a
    # quote is quoted, one with a comma is not.
    odd = pd.DataFrame({"text": ["a\tb", 'say "hi"', "x, y"], "label": ["t", "q", "c"]})
    site = tmp_path / "site1.tsv"
    pd.concat([rows.head(80), odd]).to_csv(site, sep="\t", index=False)
    data = load_task(_task([site_csv, site], test_csv), seed=0)
    train = data.train
    records = zip(train["text"], train["label"], train["site"], strict=True)
    by_site: list[list[tuple[str, str]]] = [[], []]
    for text, label, at in records:
        by_site[at].append((text, data.label_names[label]))
    assert by_site[1] == [*by_site[0], *odd.itertuples(index=False, name=None)]
    site.write_text("text\tlabel\nfine\tpos\nchest pain\tleft\tcardio\n")
    with pytest.raises(FedmodelError) as info:
        load_task(_task([site], test_csv), seed=0)
    message = str(info.value)
    assert message.startswith("task.train_files[0]: file")
    assert "site1.tsv, line 3 has 3 fields but the header has 2" in message
    site.write_text("text,label\nfine,pos\n")
    with pytest.raises(FedmodelError, match=r"looks comma-separated.*name it .csv"):
        load_task(_task([site], test_csv), seed=0)


def test_a_folder_is_refused_naming_what_to_give(
    tmp_path: Path, site_csv: Path, test_csv: Path
) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    match = r"task.train_files\[0\]: .*sites is a folder.*'\[.*sites/\*.csv\]'"
    with pytest.raises(FedmodelError, match=match):
        load_task(_task([sites], test_csv), seed=0)
    # A Parquet table written in parts: the parts are not sites.
    parts = tmp_path / "site.parquet"
    parts.mkdir()
    with pytest.raises(FedmodelError, match=r"folder.*one .parquet file") as info:
        load_task(_task([site_csv], test_csv, validation_file=str(parts)), seed=0)
    assert "pattern" not in str(info.value)


def test_a_column_differing_in_case_is_pointed_out(
    tmp_path: Path, rows: pd.DataFrame, test_csv: Path
) -> None:
    site = tmp_path / "export.csv"
    rows.rename(columns={"text": " Text", "label": "Label"}).to_csv(site, index=False)
    with pytest.raises(FedmodelError, match="'Text' differs only in case or spaces"):
        load_task(_task([site], test_csv), seed=0)


def test_a_validation_file_of_one_label_is_refused(
    tmp_path: Path, rows: pd.DataFrame, site_csv: Path, test_csv: Path
) -> None:
    # The server would keep its start, fitted to always answer that label,
    # over every round the sites paid for.
    held = tmp_path / "held.csv"
    label = rows["label"].iloc[0]
    rows[rows["label"] == label].to_csv(held, index=False)
    task = _task([site_csv], test_csv, validation_file=str(held))
    with pytest.raises(FedmodelError) as info:
        load_task(task, seed=0)
    message = str(info.value)
    assert message.startswith("task.validation_file: file") and "held.csv" in message
    assert f"only the label [{label!r}]" in message


def test_repeated_rows_in_one_site_file_are_named(
    tmp_path: Path,
    rows: pd.DataFrame,
    site_csv: Path,
    test_csv: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An export that joined a table twice: 10 rows of the second site twice.
    site = tmp_path / "site1.csv"
    second = rows.iloc[80:90]
    pd.concat([second, second.head(10)]).to_csv(site, index=False)
    task = _task([site_csv, site], test_csv)
    data = load_task(task, seed=0)
    settings = settings_from_dict(compose_config(["task=files", "num_clients=2"]))
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        warn_shared_texts(replace(settings, task=task), data, normalize=NORMALIZE)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1, warned
    assert warned[0].startswith("task.train_files[1] (")
    assert "holds 10 records repeating the text" in warned[0]
    assert "site1.csv" in warned[0] and "group of two" in warned[0]


def test_a_transfer_file_without_its_column_says_what_to_rename(
    tmp_path: Path,
) -> None:
    texts = tmp_path / "public.csv"
    texts.write_text("note\nI was charged twice\n")
    with pytest.raises(FedmodelError) as info:
        read_input_texts(texts, key="distill.transfer_file")
    assert "rename the texts' column to 'text'" in str(info.value)
    pd.DataFrame({"text": ["charged twice", None]}).to_parquet(
        parquet := tmp_path / "public.parquet"
    )
    with pytest.raises(FedmodelError, match=r"row 2 .*fill it in or remove that row"):
        read_input_texts(parquet, key="distill.transfer_file")


def test_a_txt_file_with_a_header_line_is_refused(tmp_path: Path) -> None:
    # A column exported with `cut` keeps its header: read as a text, the
    # student would be distilled on the word "text".
    texts = tmp_path / "public.txt"
    texts.write_text("\nText\nI was charged twice\n")
    with pytest.raises(FedmodelError) as info:
        read_input_texts(texts, key="distill.transfer_file")
    message = str(info.value)
    assert message.startswith("distill.transfer_file: file")
    assert "starts with the line 'Text' (line 2), a column name" in message
    texts.write_text("note\nI was charged twice\n")
    with pytest.raises(FedmodelError, match="line 'note'"):
        read_input_texts(texts, key="--input", text_column="note")
    texts.write_text("I was charged twice\ntext\n")
    assert read_input_texts(texts, key="--input").texts == [
        "I was charged twice",
        "text",
    ]
    texts.write_text("Body\nI was charged twice\n")
    with pytest.raises(FedmodelError, match=r"line 'Body' \(line 1\)"):
        read_input_texts(texts, key="--input", header_names=("body",))


def test_a_test_file_sharing_texts_with_a_site_is_named(
    tmp_path: Path,
    rows: pd.DataFrame,
    site_csv: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A test file cut from the same export as a site's: 5 of its 20 records
    # are that site's.
    test = tmp_path / "test.csv"
    pd.concat([rows.tail(15), rows.head(5)]).to_csv(test, index=False)
    task = _task([site_csv], test)
    data = load_task(task, seed=0)
    settings = settings_from_dict(compose_config(["task=files", "num_clients=1"]))
    with caplog.at_level("WARNING", logger="fedmodel.data.shared_texts"):
        warn_shared_texts(replace(settings, task=task), data, normalize=NORMALIZE)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1, warned
    assert warned[0].startswith("5 of the 20 records of task.test_file (")
    assert "task.train_files[0]" in warned[0] and "trained on" in warned[0]


def test_labels_differing_only_in_case_are_named(
    tmp_path: Path, test_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two sites' exports of one department's name split it into two classes.
    a = tmp_path / "a.csv"
    a.write_text("text,label\nheart pain,Cardiology\nbroken leg,Orthopedics\n")
    b = tmp_path / "b.csv"
    b.write_text("text,label\nchest pain,cardiology \nhip fracture,Orthopedics\n")
    data = load_task(_task([a, b], test_csv), seed=0)
    with caplog.at_level("WARNING", logger="fedmodel.data.label_warnings"):
        warn_similar_labels(data)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.startswith("1 group of labels differ only in letter case")
    assert "'Cardiology' / 'cardiology'" in warned


def test_labels_differing_only_in_an_invisible_character_are_named(
    tmp_path: Path, test_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: a zero-width space or a soft hyphen pasted into one cell made a
    # class that printed as the other did ('Cardiology' twice), without a word.
    a = tmp_path / "a.csv"
    a.write_text("text,label\nheart pain,Cardiology\nbroken leg,Ortho\u00adpedics\n")
    b = tmp_path / "b.csv"
    b.write_text("text,label\nchest pain,Cardiology\u200b\nhip fracture,Orthopedics\n")
    data = load_task(_task([a, b], test_csv), seed=0)
    with caplog.at_level("WARNING", logger="fedmodel.data.label_warnings"):
        warn_similar_labels(data)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned == (
        "2 groups of labels differ only in letter case, spaces or invisible "
        "characters, and the model learns each label as a class of its own: "
        "'Cardiology' / 'Cardiology\\u200b'; 'Orthopedics' / 'Ortho\\xadpedics'. "
        "If they mean one class, write it one way in every file"
    )


def test_a_file_whose_labels_no_other_file_has_is_named(
    tmp_path: Path, test_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One site exported codes where the others wrote names: classes of its own.
    a = tmp_path / "a.csv"
    a.write_text("text,label\nheart pain,Cardiology\nbroken leg,Orthopedics\n")
    b = tmp_path / "b.csv"
    b.write_text("text,label\nchest pain,Cardiology\nhip fracture,Orthopedics\n")
    c = tmp_path / "c.csv"
    c.write_text("text,label\nangina,I20\nfractured femur,S72\n")
    with caplog.at_level("WARNING", logger="fedmodel.data.label_warnings"):
        warn_labels(load_task(_task([a, b], test_csv), seed=0))
        assert not [r for r in caplog.records if "no label" in r.getMessage()]
        warn_labels(load_task(_task([a, b, c], test_csv), seed=0))
    (warned,) = [r.getMessage() for r in caplog.records if "no label" in r.getMessage()]
    assert warned.startswith(
        "1 train file shares no label with the other files: "
        "task.train_files[2] ['I20', 'S72']. If they are the same classes"
    )


def test_a_parquet_text_stored_as_bytes_is_read_as_text(
    tmp_path: Path, rows: pd.DataFrame, test_csv: Path
) -> None:
    # Some exporters (Hive, Impala) write strings as plain binary.
    site = tmp_path / "site.parquet"
    binary = rows.head(30).map(lambda cell: cell.encode("utf-8"))
    binary.to_parquet(site)
    data = load_task(_task([site], test_csv), seed=0)
    assert data.train["text"][:3] == rows["text"].head(3).tolist()
    assert set(data.label_names) >= set(rows["label"].head(30))
    pd.DataFrame({"text": [b"ok", b"caf\xe9"], "label": ["a", "b"]}).to_parquet(site)
    with pytest.raises(FedmodelError, match=r"row 2 .*column 'text'.*not UTF-8"):
        load_task(_task([site], test_csv), seed=0)


def test_whole_number_labels_order_by_value_unless_listed(tmp_path: Path) -> None:
    # As text, 12 labels would be ordered 1, 10, 11, 12, 2, ...: the head's
    # rows and the export's labels in an order no one chose.
    numbers = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    site = tmp_path / "codes.csv"
    pd.DataFrame({"text": [f"t{n}" for n in numbers], "label": numbers}).to_csv(
        site, index=False
    )
    other = tmp_path / "codes.jsonl"
    pd.DataFrame({"text": ["x", "y"], "label": [12, 1]}).to_json(
        other, orient="records", lines=True
    )
    test = tmp_path / "test.csv"
    test.write_text("text,label\nz,3\n")
    described = tmp_path / "labels.csv"
    pd.DataFrame(
        {"label": numbers[::-1], "description": [f"code {n}" for n in numbers[::-1]]}
    ).to_csv(described, index=False)
    task = _task([site, other], test, label_descriptions=str(described))
    data = load_task(task, seed=0)
    assert data.label_names == tuple(str(n) for n in numbers)
    named = [data.label_names[i] for i in data.train["label"]]
    assert named == [*(str(n) for n in numbers), "12", "1"]
    texts = described_labels(task, data.label_names, data.label_descriptions)
    assert texts[:3] == ("code 1", "code 2", "code 3")
    # A list the user gives keeps its order; mixed labels sort as text.
    given = ["10", "2", *(str(n) for n in numbers if n not in (2, 10))]
    assert load_task(_task([site], test, labels=given), seed=0).label_names == (
        tuple(given)
    )
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("text,label\na,10\nb,2\nc,x\n")
    # The test file's 3 is no class: the test split chooses none.
    assert load_task(_task([mixed], test), seed=0).label_names == ("10", "2", "x")


def test_a_leading_tilde_is_the_home_folder(
    tmp_path: Path, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shell leaves the ~ of `task.test_file='~/test.csv'` to fedmodel, and
    # Python would read it as a folder named "~" in the working directory.
    home = tmp_path / "home"
    (home / "sites").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for i in range(2):
        site = home / "sites" / f"s{i}.csv"
        rows.iloc[40 * i : 40 * i + 40].to_csv(site, index=False)
    rows.tail(20).to_csv(home / "test.csv", index=False)
    rows.iloc[80:100].to_csv(home / "held.csv", index=False)
    (home / "public.txt").write_text("I lost my card\n")
    overrides = [
        "task=files",
        "task.train_files=['~/sites/*.csv']",
        "task.test_file='~/test.csv'",
        'task.validation_file="~/held.csv"',
        "distill.transfer_file='~/public.txt'",
    ]
    settings = settings_from_dict(compose_config(overrides))
    task = settings.task
    assert task.train_files == [str(home / "sites" / f"s{i}.csv") for i in range(2)]
    assert (task.test_file, task.validation_file) == (
        str(home / "test.csv"),
        str(home / "held.csv"),
    )
    assert settings.distill.transfer_file == str(home / "public.txt")
    assert settings.num_clients == 2
    data = load_task(task, seed=0)
    assert data.transfer is not None and len(data.train) == 80


def test_a_file_that_is_no_parquet_is_named_in_one_sentence(
    tmp_path: Path, site_csv: Path, test_csv: Path
) -> None:
    broken = tmp_path / "site.parquet"
    broken.write_bytes(b"text,label\nnot parquet at all,a\n")
    with pytest.raises(FedmodelError, match="not a readable Parquet file") as info:
        load_task(_task([broken], test_csv), seed=0)
    message = str(info.value)
    assert str(broken) in message
    assert ".;" not in message and message.endswith("; re-export it")


def test_a_header_repeated_by_joining_two_exports_is_refused(
    tmp_path: Path, site_csv: Path, test_csv: Path
) -> None:
    # `cat site0.csv test.csv > joined.csv`: the second header was read as a
    # record, training a class "label" on the text "text".
    joined = tmp_path / "joined.csv"
    joined.write_text(site_csv.read_text() + test_csv.read_text())
    with pytest.raises(FedmodelError) as info:
        load_task(_task([joined], test_csv), seed=0)
    message = str(info.value)
    assert message.startswith("task.train_files[0]: file")
    assert "joined.csv, line 82 repeats the header (['text', 'label'])" in message
    assert "two files joined" in message and "delete that line" in message
    tsv = tmp_path / "joined.tsv"
    tsv.write_text("text\tlabel\nfine\tpos\n text \tlabel\nbad\tneg\n")
    with pytest.raises(FedmodelError, match=r"joined.tsv, line 3 repeats the header"):
        load_task(_task([tsv], test_csv), seed=0)


def test_a_header_repeated_with_its_bom_is_refused(
    tmp_path: Path, site_csv: Path, test_csv: Path
) -> None:
    # Two Excel "CSV UTF-8" exports, a BOM before each header, joined with
    # `cat`: before, the second header was read as a record (the labels were
    # those of the files and 'label', of the text '\ufefftext').
    joined = tmp_path / "joined.csv"
    joined.write_bytes(site_csv.read_bytes() + b"\xef\xbb\xbf" + test_csv.read_bytes())
    with pytest.raises(FedmodelError) as info:
        load_task(_task([joined], test_csv), seed=0)
    assert str(info.value) == (
        f"task.train_files[0]: file {joined}, line 82 repeats the header (['text', "
        "'label']): were two files joined? delete that line (and any later copy "
        "of the header)"
    )


def test_jsonl_files_joined_with_their_boms_are_read_whole(
    tmp_path: Path, test_csv: Path
) -> None:
    # Before: "line 2 is not valid JSON (Unexpected UTF-8 BOM (decode using
    # utf-8-sig) at column 1)": the second file's BOM, kept by `cat`.
    bom = b"\xef\xbb\xbf"
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(
        bom
        + b'{"text": "fine day", "label": "pos"}\n'
        + bom
        + b'{"text": "awful", "label": "neg"}\n'
    )
    data = load_task(_task([joined], test_csv), seed=0)
    assert data.train["text"] == ["fine day", "awful"]


def test_a_parquet_column_written_as_its_index_is_read_as_a_column(
    tmp_path: Path, rows: pd.DataFrame, test_csv: Path
) -> None:
    # df.set_index("label").to_parquet(...): the schema lists the column,
    # and pandas would read it back as the index, not a column.
    site = tmp_path / "site.parquet"
    head = rows.head(30)
    for index in (["label"], ["text", "label"]):
        head.set_index(index).to_parquet(site)
        data = load_task(_task([site], test_csv), seed=0)
        assert data.train["text"] == head["text"].tolist()
        labels = [data.label_names[i] for i in data.train["label"]]
        assert labels == head["label"].tolist()


def test_excels_sep_line_and_a_jsonl_value_that_is_no_object_are_named(
    tmp_path: Path, test_csv: Path
) -> None:
    # Excel writes "sep=," above the header when asked to keep the separator.
    site = tmp_path / "excel.csv"
    site.write_text("sep=,\ntext,label\nfine,pos\n")
    with pytest.raises(FedmodelError) as info:
        load_task(_task([site], test_csv), seed=0)
    assert "excel.csv, line 1 is Excel's 'sep=,' line" in str(info.value)
    assert "delete it" in str(info.value)
    jsonl = tmp_path / "site.jsonl"
    for value, kind in [
        ("null", "JSON null"),
        ("[1, 2]", "a JSON array"),
        ('"a text"', "a JSON string"),
        ("3.5", "a JSON number"),
        ("true", "JSON true"),
    ]:
        jsonl.write_text(f'{{"text": "a", "label": "x"}}\n{value}\n')
        with pytest.raises(FedmodelError) as info:
            load_task(_task([jsonl], test_csv), seed=0)
        assert f"site.jsonl, line 2 holds {kind}, not an object" in str(info.value)
        # Before, it gave {"text": ..., "label": ...} as the example, right
        # only for the default columns.
        assert "with the column names (the text's" in str(info.value)
