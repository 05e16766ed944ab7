"""The one form every label is compared in: Unicode's composed form (NFC).

Imports nothing but the standard library, so a site's message process can
compare its agreed labels without datasets or pandas.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


def composed(label: str) -> str:
    """`label` in Unicode's composed form (NFC), the one every label is compared in.

    An `é` written as `e` and a combining accent (NFD: macOS file systems,
    some exports) is the same text as the one-character `é` to every reader;
    compared as written, one class would split in two that print alike.
    """
    return unicodedata.normalize("NFC", label)


def composed_labels(labels: Iterable[object]) -> tuple[str, ...]:
    """A config's `task.labels`, in order, each as text in the composed form.

    The server's label names (`files.py`) and a site's (`client/site_data.py`,
    `client/site.py`) are read from the run-config through this, so a
    decomposed `é` there names the label the files' composed `é` is.
    """
    return tuple(composed(str(label)) for label in labels)
