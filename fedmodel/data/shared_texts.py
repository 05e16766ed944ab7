"""Warnings where a files task's files share texts, given once per run by the server.

A copy of a file under another name is not refused as a file named in two
roles is (`fedmodel.data.file_roles`), so the server compares texts, as the
model's tokenizer reads them: rows repeated in one site's file, texts two
sites' files share, texts a server file (`task.validation_file`,
`distill.transfer_file`) shares with a site's, and test records whose text a
site's file or the validation file holds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from fedmodel.config import RunSettings, TaskSettings
from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.config.wording import plural
from fedmodel.data.splits import TaskData

logger = logging.getLogger(__name__)

# What a test record does whose text another file holds, by that file's role.
_TRAINED_ON = "the test accuracy counts records the model trained on"
_CHOSEN_BY = (
    "the server fitted its start and chose its round on them, and the test "
    "split must choose nothing"
)


def warn_shared_texts(
    settings: RunSettings,
    data: TaskData,
    *,
    normalize: Callable[[str], str],
    distill_texts: Sequence[str] | None = None,
) -> None:
    """Warn where records share texts: in one site's file, two sites', or the server's.

    The server calls it once per run on the records it loaded (the clients,
    which load the same files in their own processes, do not), and on
    `distill_texts`, the texts of `distill.transfer_file` as its check before
    round 1 read them (None: the run distils on no such file). Only records
    that carry their site (`TaskData.has_sites`) have texts to compare. Texts
    are compared as the tokenizer sees them: `normalize` is its normalizer
    (`text_normalizer`), and runs of whitespace count as one space (`_as_seen`).
    """
    task = settings.task
    sites: list[list[str]] = [[] for _ in task.train_files]
    # Each split in one query: a column read lazily is a query a record.
    train = data.train[:]
    train_texts = _as_seen(train["text"], normalize)
    for text, site in zip(train_texts, train[SITE_COLUMN], strict=True):
        sites[site].append(text)
    _warn_repeats_at_a_site(task, sites)
    _warn_texts_at_two_sites(task, sites)
    holders = [
        (f"task.train_files[{i}]", name, texts, _TRAINED_ON)
        for i, (name, texts) in enumerate(zip(task.train_files, sites, strict=True))
    ]
    held = (
        [] if data.transfer is None else _as_seen(data.transfer[:]["text"], normalize)
    )
    if held and task.validation_file:
        holders.append(("task.validation_file", task.validation_file, held, _CHOSEN_BY))
    _warn_test_texts_held(task, _as_seen(data.test[:]["text"], normalize), holders)
    if held and task.validation_file:
        used = "fits its start and picks its round on it"
        server_file = ("task.validation_file", task.validation_file, used)
        _warn_server_texts_at_sites(task, held, sites, server_file)
    if settings.distill.transfer_file and distill_texts is not None:
        name = settings.distill.transfer_file
        used = "distils the student on it"
        server_file = ("distill.transfer_file", name, used)
        held = _as_seen(distill_texts, normalize)
        _warn_server_texts_at_sites(task, held, sites, server_file)


def _as_seen(texts: Sequence[str], normalize: Callable[[str], str]) -> list[str]:
    # BERT's tokenizer normalizes a text (an uncased one lower-cases it and
    # drops accents), then splits it at whitespace: `Abc  d` and ` abc d` are
    # one record to the model. The records keep their text as written (their
    # fingerprint ties a ledger to them).
    return [" ".join(normalize(text).split()) for text in texts]


def _warn_test_texts_held(
    task: TaskSettings,
    test_texts: Sequence[str],
    holders: Sequence[tuple[str, str, Sequence[str], str]],
) -> None:
    # A test file cut from the same table as a site's, or as the server's
    # validation file, scores the model on records it trained on or chose by:
    # its accuracy would say more than it should. `holders`: (key, file,
    # texts, what sharing does) of each file the test file is checked against.
    for key, name, texts, does in holders:
        held = set(texts)
        shared = sum(text in held for text in test_texts)
        if shared:
            logger.warning(
                "%d of the %d records of task.test_file (%s) %s a text that "
                "%s (%s) holds too: %s. Take them out of one of the two",
                shared,
                len(test_texts),
                Path(str(task.test_file)),
                plural(shared, "has", "have"),
                key,
                Path(name),
                does,
            )


def _warn_server_texts_at_sites(
    task: TaskSettings,
    server_texts: Sequence[str],
    sites: Sequence[Sequence[str]],
    server_file: tuple[str, str, str],
) -> None:
    # The server uses its file without noise: one cut from the sites' records
    # would leave the shared ones outside every site's budget.
    key, name, used = server_file
    held = set(server_texts)
    for i, texts in enumerate(sites):
        shared = sum(text in held for text in texts)
        if shared:
            logger.warning(
                "%d of the %d records of task.train_files[%d] (%s) %s a text "
                "that %s (%s) holds too. The server %s without noise: if the "
                "file was cut from the sites' records, take those out of one of "
                "the two",
                shared,
                len(texts),
                i,
                Path(task.train_files[i]),
                plural(shared, "has", "have"),
                key,
                Path(name),
                used,
            )


def _warn_repeats_at_a_site(task: TaskSettings, sites: Sequence[Sequence[str]]) -> None:
    # DP-SGD charges each row as one record: a record a file holds twice is
    # trained on twice and protected only as a group of two.
    for i, texts in enumerate(sites):
        repeats = len(texts) - len(set(texts))
        if repeats:
            logger.warning(
                "task.train_files[%d] (%s) holds %s repeating the text of "
                "another of its records. Each row is charged as one record: a "
                "record held twice is trained on twice, and its bound is that of "
                "a group of two (twice the epsilon shown). If the rows are one "
                "record, keep one",
                i,
                Path(task.train_files[i]),
                f"{repeats} {plural(repeats, 'record')}",
            )


def _warn_texts_at_two_sites(
    task: TaskSettings, sites: Sequence[Sequence[str]]
) -> None:
    # Each site's budget covers its own records, so for a record two sites
    # hold the bound is the two sites' epsilons added up.
    first_site: dict[str, int] = {}
    shared: Counter[tuple[int, int]] = Counter()
    for j, texts in enumerate(sites):
        for text in set(texts):
            i = first_site.setdefault(text, j)
            if i != j:
                shared[i, j] += 1
    for (i, j), count in sorted(shared.items()):
        logger.warning(
            "task.train_files[%d] (%s) holds %s with a text that "
            "task.train_files[%d] (%s) holds too. Each site's epsilon covers its "
            "own records: for a record both hold, the bound is the two added up. "
            "If the files were cut from one table with repeats, keep each record "
            "at one site",
            j,
            Path(task.train_files[j]),
            f"{count} {plural(count, 'record')}",
            i,
            Path(task.train_files[i]),
        )
