"""What a site agreed with the federation, checked before its file is read.

A site may fix its label set (`--labels-file`) and the two columns of its
data-file it trains on (`--text-column`, `--label-column`). The server's
run-config must then name exactly those, or the round is refused before the
site's file is read: whether a round goes ahead depends on the two lists only,
never on what the site's records hold (a file is refused whole for one row that
does not fit the labels or columns the server named).
"""

from __future__ import annotations

from pathlib import Path

from fedmodel.client.site import LABELS_FILE, RunRefusal, SiteConfig, site_setting
from fedmodel.config import RunSettings
from fedmodel.data.label_form import composed, composed_labels
from fedmodel.data.text_file import read_utf8, text_lines
from fedmodel.errors import FedmodelError


def agreed_labels(path: Path) -> tuple[str, ...]:
    """The labels a site's `labels-file` lists, one per line (blank lines skipped).

    The file is read as every user text file is (`data/text_file.py`: UTF-8,
    a BOM dropped, LF, CRLF or a lone CR ending a line) and each label taken in
    the composed form the server compares labels in.
    """
    where = f"{site_setting(LABELS_FILE)}: {str(path)!r}"
    try:
        lines = text_lines(read_utf8(path))
    except FedmodelError as exc:
        raise FedmodelError(f"{site_setting(LABELS_FILE)}: {exc}") from None
    labels: list[str] = []
    for number, line in enumerate(lines, start=1):
        label = composed(line.strip())
        if not label:
            continue
        if label in labels:
            raise FedmodelError(
                f"{where}, line {number}: label {label!r} is listed twice; list "
                "each label once"
            )
        labels.append(label)
    if not labels:
        raise FedmodelError(
            f"{where} lists no label: write the federation's labels, one per line"
        )
    return tuple(labels)


def check_site_labels(settings: RunSettings, site: SiteConfig) -> None:
    """Refuse a server label set other than the one the site agreed to.

    Checked before the site's file is read, so whether the round goes ahead
    depends on the two lists only, never on which labels the site's records
    hold. Without a `labels-file` the server's list is taken as it comes.
    """
    if site.labels_file is None:
        return
    agreed = set(agreed_labels(site.labels_file))
    asked = set(composed_labels(settings.task.labels or ()))
    if asked != agreed:
        differences = [
            f"{what} {sorted(labels)}"
            for what, labels in (("lacks", agreed - asked), ("adds", asked - agreed))
            if labels
        ]
        raise RunRefusal(
            f"site {site.site_id} refuses the run's task.labels: they are not the "
            f"{len(agreed)} labels of its {LABELS_FILE} (the server's list "
            f"{' and '.join(differences)}); the server must send the label set "
            "the sites agreed to"
        )


def check_site_agreement(settings: RunSettings, site: SiteConfig) -> None:
    """Refuse a run-config whose labels or columns are not the ones the site agreed."""
    check_site_labels(settings, site)
    check_site_columns(settings, site)


def check_site_columns(settings: RunSettings, site: SiteConfig) -> None:
    """Refuse server columns other than the two the site agreed to, if it did."""
    if site.columns is None:
        return
    asked = (settings.task.text_column, settings.task.label_column)
    if asked != site.columns:
        text, label = site.columns
        raise RunRefusal(
            f"site {site.site_id} refuses task.text_column={asked[0]!r} and "
            f"task.label_column={asked[1]!r}: it agreed to train on the columns "
            f"{text!r} (text) and {label!r} (label) of its data-file; the server "
            "must send those"
        )
