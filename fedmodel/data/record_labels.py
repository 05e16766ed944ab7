"""A label set read from the sites' files must name classes, not single records.

fedmodel treats the label set as public (docs/privacy.md): the server logs
it, the head is started from it and the exported model names its outputs by
it, all outside every client's epsilon. A label that one record alone holds
is no class: it is part of that record. A site file most of whose records
hold such labels is most often a text read as labels (`task.text_column`
and `task.label_column` swapped, or notes exported under the label column),
and the run would carry those records' texts off the site as class names. So
such a file is refused before the run, by counts alone: the message names no
label. Swapped columns are refused at any size by their other half: the text
column then holds class names, which other records hold too. Records are
counted, not rows: a record's copies (two sites', or a repeated row) are one.
Fewer such records, a site's rare classes, are named in the server's warning,
by counts: their labels leave the site all the same.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedmodel.config import TaskSettings
from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.config.wording import plural
from fedmodel.data.splits import TaskData
from fedmodel.errors import FedmodelError

logger = logging.getLogger(__name__)

# A file is refused when at least this many of its records, and more than
# half of them, hold a label no other record holds: a handful of rare
# classes at a small site is data, most of a file's records each alone is not.
MIN_RECORDS_ALONE = 5


@dataclass(frozen=True)
class FileRecords:
    """A task file's records as read: its key and path, texts and labels by row."""

    # The config key the file was named by, e.g. "task.train_files[2]".
    key: str
    path: Path
    texts: list[str]
    labels: list[str]
    # The line each record starts on in its file, where the reader kept
    # lines (`file_cells.record_lines`): not for Parquet, nor for records
    # gathered from a loaded task.
    lines: np.ndarray | None = field(default=None, compare=False)


def refuse_record_labels(
    sites: Sequence[tuple[str, FileRecords]],
    *,
    server_labels: Iterable[str],
    server_texts: Iterable[str],
    text_column: str,
    label_column: str,
) -> None:
    """Refuse a site file whose labels are mostly each one record's alone.

    `sites` pairs each train file's key (task.train_files[i]) with its
    records; `server_labels` holds the labels the server's own files name
    (test, validation, descriptions): real class names, so no sign of a text
    read as a label; `server_texts` the texts of its test and validation
    files. Only for a label set derived from the files: the labels of
    `task.labels` are the operator's, listed on purpose.
    """
    server_labels = list(server_labels)
    held = Counter(label for _, site in sites for label in site.labels)
    held.update(server_labels)
    lone = _one_record_labels(sites, named=server_labels)
    written = Counter(text for _, site in sites for text in site.texts)
    written.update(server_texts)
    copies = Counter(
        pair for _, site in sites for pair in zip(site.texts, site.labels, strict=True)
    )
    for key, site in sites:
        path, labels = site.path, site.labels
        alone = sum(label in lone for label in labels)
        if alone >= MIN_RECORDS_ALONE and 2 * alone > len(labels):
            raise FedmodelError(
                f"{key}: file {path}: {alone} of its {len(labels)} records hold "
                f"a label in column {label_column!r} that no other record of the "
                "task holds. That is most often a text read as a label "
                "(task.text_column and task.label_column swapped, or notes "
                "exported under the label column), and the label set is public: "
                "the server holds it and the exported model names its classes by "
                "it, so these records' texts would leave the site outside every "
                "epsilon (nor can DP-SGD learn a class from one record). Check the "
                "two column keys and the file; if these are the classes, list "
                "them in task.labels"
            )
        _refuse_swapped(
            key,
            site,
            held=held,
            lone=lone,
            written=written,
            copies=copies,
            text_column=text_column,
            label_column=label_column,
        )


def warn_lone_labels(task: TaskSettings, data: TaskData) -> None:
    """Name, by counts, each site file with records whose label no other holds.

    Fewer than the refusal's (a few rare classes), such a label is still one
    record's: as a class of the public label set it leaves the site outside
    every epsilon. Only for a label set derived from the files, where the
    server holds the sites' records (a simulation); the message names no label.
    A label the server's validation file holds is a class on the server's own
    account; one that only its test file or descriptions name is a class
    because that record holds it (the test split chooses no class).
    """
    if task.labels is not None or not data.has_sites or len(data.train) == 0:
        return
    names = data.label_names
    # Each split in one query: a column read lazily is a query a record, most
    # of this check's 0.27 s a start for HWU64's 7,712 records at four sites.
    server = (
        [] if data.transfer is None else [names[i] for i in data.transfer[:]["label"]]
    )
    sites: dict[int, FileRecords] = {}
    train = data.train[:]
    for text, label, site in zip(
        train["text"], train["label"], train[SITE_COLUMN], strict=True
    ):
        key, path = f"task.train_files[{site}]", Path(task.train_files[site])
        records = sites.setdefault(site, FileRecords(key, path, [], []))
        records.texts.append(text)
        records.labels.append(names[label])
    files = [(records.key, records) for _, records in sorted(sites.items())]
    lone = _one_record_labels(files, named=server)
    for key, records in files:
        alone = sum(label in lone for label in records.labels)
        if alone:
            logger.warning(
                "%s (%s): %d of its %d records %s a label that no other record "
                "of the task holds. The label set is public (the server holds "
                "it and the exported model names its classes by it), so such a "
                "record's label leaves the site outside every epsilon (nor can "
                "DP-SGD learn a class from one record). If %s public, list the "
                "labels in task.labels; if not, remove %s or give %s a wider class",
                key,
                records.path,
                alone,
                len(records.labels),
                plural(alone, "holds", "hold"),
                plural(alone, "the class is", "these classes are"),
                plural(alone, "that record", "those records"),
                plural(alone, "it", "them"),
            )


def _one_record_labels(
    sites: Sequence[tuple[str, FileRecords]], *, named: Iterable[str]
) -> set[str]:
    """The labels that one record alone holds, in every file of the task.

    A record held twice, as two sites' copies of one export or a row
    repeated in a file, is one record: counted by rows, its label would pass
    for a class of two, and two sites holding the same swapped file would
    carry every text off as a class name. A label `named` is left out.
    """
    texts: dict[str, set[str]] = {}
    for _, site in sites:
        for text, label in zip(site.texts, site.labels, strict=True):
            texts.setdefault(label, set()).add(text)
    return {label for label, held in texts.items() if len(held) == 1} - set(named)


def _refuse_swapped(
    key: str,
    site: FileRecords,
    *,
    held: Counter[str],
    lone: set[str],
    written: Counter[str],
    copies: Counter[tuple[str, str]],
    text_column: str,
    label_column: str,
) -> None:
    """Refuse a file, of any size, that reads as its two columns swapped.

    A record reads so when no other record holds its label and another
    record holds its text, exactly, as its text or its label: a class name,
    as swapped columns put in the text column. Legit records seldom are both
    a class of their own and a copy of another record's text or label.
    """
    swapped = sum(
        label in lone and _held_elsewhere(text, label, held, written, copies)
        for text, label in zip(site.texts, site.labels, strict=True)
    )
    if 2 * swapped > len(site.labels):
        raise FedmodelError(
            f"{key}: file {site.path}: {swapped} of its {len(site.labels)} "
            f"records hold a label in column {label_column!r} that no other "
            f"record of the task holds, and a text in column {text_column!r} "
            "that another record holds as its text or its label: the two "
            "columns read as swapped, class names in the text column and texts "
            "in the label column. The label set is public (the server holds it "
            "and the exported model names its classes by it), so these "
            "records' texts would leave the site outside every epsilon. Check "
            "task.text_column, task.label_column and the file's header; if "
            "these are the classes, list them in task.labels"
        )


def _held_elsewhere(
    text: str,
    label: str,
    held: Counter[str],
    written: Counter[str],
    copies: Counter[tuple[str, str]],
) -> bool:
    """Whether a record other than this one (or its copies) holds `text`.

    As its text or as its label: a class name, where the columns are swapped.
    """
    own = copies[text, label]
    return written[text] - own + held[text] - (own if text == label else 0) > 0
