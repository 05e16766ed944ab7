"""A user's text file as characters and lines, naming where it is not UTF-8.

Every reader of a user's text file (CSV, TSV, JSONL, .txt) decodes and splits
it here, so a BOM, the line endings and a wrong encoding are handled one way.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from fedmodel.errors import FedmodelError

# What ends a line: LF, CRLF or a lone CR (a spreadsheet's "CSV (Macintosh)").
# Not str.splitlines' other breaks (U+2028, U+0085, ...): JSON writes those
# raw inside a string, and a JSONL line split at one is an object cut in two.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def read_utf8(path: Path) -> str:
    """The file's text without a leading BOM, naming the first byte not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FedmodelError(
            f"cannot read file {path} ({exc.strerror or exc}): fix the path, or "
            "let this user read the file"
        ) from exc
    if raw.startswith(_UTF16_MARKS):
        raise FedmodelError(
            f"file {path} is UTF-16 text (a spreadsheet's 'Unicode text' "
            "export), not UTF-8; re-save the file as UTF-8"
        )
    body = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(text_lines(body[: exc.start].decode("utf-8")))
        byte = exc.start + len(raw) - len(body)
        raise FedmodelError(
            f"file {path} is not UTF-8 text: byte {byte} (line {line}) cannot "
            "be decoded; re-save the file as UTF-8"
        ) from exc


def text_lines(text: str) -> list[str]:
    """The lines of a file's text, split at LF, CRLF or a lone CR only."""
    return _LINE_BREAK.split(text)
