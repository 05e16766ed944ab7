"""A user's text file as characters and lines, naming where it is not UTF-8.

Every reader of a user's text file (CSV, TSV, JSONL, .txt) decodes and splits
it here, so a BOM, the line endings and a wrong encoding are handled one way.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fedmodel.errors import FedmodelError

# What ends a line: LF, CRLF or a lone CR (a spreadsheet's "CSV (Macintosh)").
# Not str.splitlines' other breaks (U+2028, U+0085, ...): JSON writes those
# raw inside a string, and a JSONL line split at one is an object cut in two.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# The `attrs` key of a table read line by line (CSV, TSV, JSONL): the line,
# from 1, that each of its records starts on, for messages that name a row.
# A numpy array: pandas deep-copies a table's attrs into every column taken
# from it, which a list of a large file's lines made 10 times slower.
RECORD_LINES = "record_lines"
_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# How a file that is no text starts: an .xlsx is a ZIP archive, an .xls an
# OLE2 compound file; the first bytes of a text file tell its encoding.
_ZIP_MARK = b"PK\x03\x04"
_OLE_MARK = bytes.fromhex("D0CF11E0A1B11AE1")
_GZIP_MARK = b"\x1f\x8b"
_OPENING = 512


def read_utf8(
    path: Path, *, bytes_read: Callable[[bytes], object] | None = None
) -> str:
    """The file's text without a leading BOM, naming the first byte not UTF-8.

    `bytes_read` as for `file_bytes`.
    """
    return decode_utf8(file_bytes(path, bytes_read=bytes_read), source=f"file {path}")


def file_bytes(
    path: Path, *, bytes_read: Callable[[bytes], object] | None = None
) -> bytes:
    """The bytes of a user's file, naming why where it cannot be read.

    `bytes_read`, if given, is handed them first: a caller that hashes them
    knows the content of the one read its texts are parsed from.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FedmodelError(
            f"cannot read file {path} ({exc.strerror or exc}): fix the path, or "
            "let this user read the file"
        ) from exc
    if bytes_read is not None:
        bytes_read(raw)
    return raw


def decode_utf8(raw: bytes, *, source: str) -> str:
    """`raw` as text without a leading BOM, naming the first byte not UTF-8.

    `source` says where the bytes came from (`file /data/a.csv`, `standard
    input`). The byte's value is named too: 0xE9 is a Latin-1 or
    Windows-1252 `é`, the most common reason. A workbook and UTF-16 text,
    told by their opening bytes, are named as such instead.
    """
    _refuse_other_formats(raw, source=source)
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


def _refuse_other_formats(raw: bytes, *, source: str) -> None:
    """Refuse a workbook, an archive and UTF-16 text, named by the opening bytes.

    Else each is decoded as UTF-8: a workbook's or a gzip file's first byte
    UTF-8 cannot decode was blamed on Latin-1, and UTF-16 without a BOM was read as
    header names with a NUL between letters.
    """
    save = "open it in Excel and save it as 'CSV UTF-8'"
    if raw.startswith(_OLE_MARK):
        what = "an Excel 97-2003 workbook (.xls) or another Office file"
    elif raw.startswith(_ZIP_MARK) and _holds_workbook(raw):
        what = "an Excel workbook (.xlsx)"
    elif raw.startswith(_ZIP_MARK):
        what = "a ZIP archive"
        save = f"unzip it and name the file inside (a workbook: {save})"
    elif raw.startswith(_GZIP_MARK):  # a database's export, compressed
        what = "a gzip archive"
        save = "decompress it (gunzip) and name the file it gives"
    elif raw.startswith(_UTF16_MARKS) or _is_utf16_without_bom(raw[:_OPENING]):
        raise FedmodelError(
            f"{source} is UTF-16 text (a spreadsheet's 'Unicode text' "
            "export), not UTF-8; re-save it as UTF-8"
        )
    else:
        return
    raise FedmodelError(f"{source} is {what}, not text; {save}")


def _is_utf16_without_bom(opening: bytes) -> bool:
    # UTF-16 writes a NUL byte beside every ASCII letter; UTF-8 text has none.
    pairs = len(opening) // 2
    nuls = max(opening[0::2].count(0), opening[1::2].count(0))
    return pairs > 0 and 2 * nuls > pairs


def _holds_workbook(raw: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return any(name.startswith("xl/") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def text_lines(text: str) -> list[str]:
    """The lines of a file's text, split at LF, CRLF or a lone CR only."""
    return _LINE_BREAK.split(text)


def ended_lines(text: str) -> Iterator[str]:
    """The lines of a file's text in turn, each with the LF, CRLF or CR ending it.

    As `io.StringIO(text, newline="")` reads them, without its copy of the
    text at four bytes a character.
    """
    start = 0
    for line_break in _LINE_BREAK.finditer(text):
        yield text[start : line_break.end()]
        start = line_break.end()
    if start < len(text):
        yield text[start:]
