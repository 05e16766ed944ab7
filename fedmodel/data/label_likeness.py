"""When one label writes another's class: its case, spacing, or a number's form."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# A whole number as an export may write it: signed, zero-padded, or with a
# zero fraction (a column of codes written as floats: `3.0`).
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+(\.0*)?")


def case_key(name: str) -> str:
    """A label as its letters and words show: no case, no spacing, no invisibles."""
    # Invisible format characters (a zero-width space, a soft hyphen, a BOM
    # pasted into a cell) make a label that prints as another one does.
    visible = "".join(c for c in name if unicodedata.category(c) != "Cf")
    return " ".join(visible.split()).casefold()


def number_key(name: str) -> int | None:
    """The whole number a label writes (`3`, `3.0`, `003`), else None.

    Only whole numbers: `1.1` and `1.10` may well be two sections' codes.
    """
    return int(name.split(".")[0]) if _WHOLE_NUMBER.fullmatch(name) else None


def class_written(label: str, classes: Sequence[str]) -> str | None:
    """The class that `label` writes another way (`3.0`: `3`), if one does.

    Case, spacing and invisible characters, or a number's form, as
    `warn_similar_labels` compares labels.
    """
    for key in (number_key, case_key):
        value = key(label)
        found = [name for name in classes if value is not None and key(name) == value]
        if found:
            return found[0]
    return None
