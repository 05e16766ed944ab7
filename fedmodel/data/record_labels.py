"""A label set read from the sites' files must name classes, not single records.

fedmodel treats the label set as public (docs/privacy.md): the server logs
it, the head is started from it and the exported model names its outputs by
it, all outside every client's epsilon. A label that one record alone holds
is no class: it is part of that record. A site file most of whose records
hold such labels is most often a text read as labels (`task.text_column`
and `task.label_column` swapped, or notes exported under the label column),
and the run would carry those records' texts off the site as class names. So
such a file is refused before the run, by counts alone: the message names no
label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from fedmodel.errors import FedmodelError

# A file is refused when at least this many of its records, and more than
# half of them, hold a label no other record holds: a handful of rare
# classes at a small site is data, most of a file's records each alone is not.
MIN_RECORDS_ALONE = 5


def refuse_record_labels(
    sites: Sequence[tuple[str, Path, Sequence[str]]],
    *,
    server_labels: Iterable[str],
    label_column: str,
) -> None:
    """Refuse a site file whose labels are mostly each one record's alone.

    `sites` holds each train file's key, path and labels; `server_labels` the
    labels the server's own files name (test, validation, descriptions),
    which are the server's to name. Only for a label set derived from the
    files: the labels of `task.labels` are the operator's, listed on purpose.
    """
    held = Counter(label for _, _, labels in sites for label in labels)
    held.update(server_labels)
    for key, path, labels in sites:
        alone = sum(held[label] == 1 for label in labels)
        if alone >= MIN_RECORDS_ALONE and 2 * alone > len(labels):
            raise FedmodelError(
                f"{key}: file {path}: {alone} of its {len(labels)} records hold "
                f"a label in column {label_column!r} that no other record of the "
                "task holds. That is most often a text read as a label "
                "(task.text_column and task.label_column swapped, or notes "
                "exported under the label column), and the label set is public: "
                "the server logs it and the exported model names its classes by "
                "it, so these records' texts would leave the site outside every "
                "epsilon (nor can DP-SGD learn a class from one record). Check the "
                "two column keys and the file; if these are the classes, list "
                "them in task.labels"
            )
