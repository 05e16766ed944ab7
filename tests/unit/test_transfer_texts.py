"""`distill.transfer_file`'s texts: read once a process for each version of the file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from fedmodel.data import transfer_texts
from fedmodel.data.readable_records import check_readable_transfer_file
from fedmodel.data.text_inputs import InputTexts
from fedmodel.distill.finish import server_distill_texts
from fedmodel.errors import FedmodelError
from fedmodel.run.layout import TRANSFER_FILE_HASH
from fedmodel.run.resumed_student import record_transfer_file
from fedmodel.run.task_file_hashes import content_hash
from tests.conftest import small_settings
from tests.unit.counted_reads import counted_reads


def test_a_start_reads_the_transfer_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `fedmodel simulate` reads it before torch loads, then the model's checks
    # and the ServerApp (the same process) ask for it again: one read.
    path = tmp_path / "public.txt"
    path.write_text("first public text\nsecond public text\n")
    settings = small_settings("distill=server", f"distill.transfer_file={path}")
    reads = counted_reads(monkeypatch, transfer_texts, "read_input_texts")
    check_readable_transfer_file(settings)
    texts = server_distill_texts(settings, None)
    assert texts == ["first public text", "second public text"]
    texts.append("a caller's own list")
    assert server_distill_texts(settings, None) == texts[:2]
    assert reads == [path]


def test_a_changed_or_missing_transfer_file_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "public.txt"
    path.write_text("first public text\n")
    settings = small_settings("distill=server", f"distill.transfer_file={path}")
    assert server_distill_texts(settings, None) == ["first public text"]
    path.write_text("a new text\n")
    later = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))
    assert server_distill_texts(settings, None) == ["a new text"]
    path.unlink()
    reads = counted_reads(monkeypatch, transfer_texts, "read_input_texts")
    for _ in range(2):  # a refusal is not kept: each start says it
        with pytest.raises(FedmodelError, match=r"public\.txt does not exist"):
            check_readable_transfer_file(settings)
    assert reads == [path, path]


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_the_recorded_hash_is_of_the_bytes_whose_texts_were_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    # The file rewritten as soon as its texts were read: hashed again at the
    # record, the run kept the new file's hash for the old file's texts, and
    # a resume compared the file it names against content never distilled on.
    path = tmp_path / f"public{suffix}"
    path.write_text("text\nfirst public text\n" if suffix == ".csv" else "first\n")
    read_bytes = path.read_bytes()
    settings = small_settings("distill=server", f"distill.transfer_file={path}")
    read = transfer_texts.read_input_texts

    def read_then_rewritten(name: Path, **kwargs: Any) -> InputTexts:
        texts = read(name, **kwargs)
        path.write_text("text\na rewritten text\n")
        later = path.stat().st_mtime_ns + 1_000_000_000
        os.utime(path, ns=(later, later))
        return texts

    monkeypatch.setattr(transfer_texts, "read_input_texts", read_then_rewritten)
    texts = server_distill_texts(settings, None)
    assert texts == ["first public text" if suffix == ".csv" else "first"]
    record_transfer_file(tmp_path, settings)
    recorded = (tmp_path / TRANSFER_FILE_HASH).read_text().strip()
    # `content_hash`'s format: an earlier run's record of these bytes is equal.
    assert recorded == hashlib.sha256(read_bytes).hexdigest()
    assert recorded != content_hash(path)
