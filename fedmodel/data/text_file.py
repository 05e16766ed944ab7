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
    return decode_utf8(raw, source=f"file {path}")


def decode_utf8(raw: bytes, *, source: str) -> str:
    """`raw` as text without a leading BOM, naming the first byte not UTF-8.

    `source` says where the bytes came from (`file /data/a.csv`, `standard
    input`). The byte's value is named too: 0xE9 is a Latin-1 or
    Windows-1252 `é`, the most common reason.
    """
    if raw.startswith(_UTF16_MARKS):
        raise FedmodelError(
            f"{source} is UTF-16 text (a spreadsheet's 'Unicode text' "
            "export), not UTF-8; re-save it as UTF-8"
        )
    body = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(text_lines(body[: exc.start].decode("utf-8")))
        byte = exc.start + len(raw) - len(body)
        raise FedmodelError(
            f"{source} is not UTF-8 text: byte {byte} (line {line}) is "
            f"0x{body[exc.start]:02X}, which UTF-8 cannot decode (most often the "
            "file was saved as Latin-1 or Windows-1252, a spreadsheet's plain "
            "'CSV' export); re-save it as UTF-8"
        ) from exc


def text_lines(text: str) -> list[str]:
    """The lines of a file's text, split at LF, CRLF or a lone CR only."""
    return _LINE_BREAK.split(text)
