"""Each file of a files task plays one role: one site's, the server's test, its own.

A file named in two roles would quietly break what the run reports:

- a train file listed twice makes two clients of one site's records, each
  spending its own budget on them: every record spends twice the epsilon shown;
- a train file as `task.validation_file` hands that site's records to the
  server, which fits its start on them and weighs it against the last round
  on them, without noise;
- a train file as `task.test_file` scores the model on records it trained on;
- the test file as `task.validation_file` lets the test split choose;
- a train file as `distill.transfer_file` hands that site's texts to the
  server, which distils the student on them without noise;
- the test file as `distill.transfer_file` trains the student on the texts
  it is then scored on.

Paths are compared once resolved (links followed), so `./a.csv` and `a.csv`
are one file. A copy under another name is not refused: where a server file
shares texts with a site's, or two sites' files share texts, the server names
them in a warning once per run (`warn_shared_texts`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from fedmodel.config import RunSettings, TaskSettings
from fedmodel.config.train_files import SITE_COLUMN
from fedmodel.config.wording import plural
from fedmodel.data.splits import TaskData
from fedmodel.errors import FedmodelError

logger = logging.getLogger(__name__)

_TRAIN, _TEST, _VALIDATION = "train", "test", "validation"

# What each pair of roles would do, keyed by (first role, second role) in the
# order the files are listed: train files, then test, then validation.
_WHY = {
    (_TRAIN, _TRAIN): (
        "each site's records must be one client's: listed twice they are two "
        "clients' and spend twice the epsilon shown; list each file once"
    ),
    (_TRAIN, _TEST): (
        "the test file must hold records no site trains on; give a held-out file"
    ),
    (_TRAIN, _VALIDATION): (
        "task.validation_file is the server's own records, used without noise, "
        "so a site's file there gives the server that site's records; give a "
        "file no site holds, or null"
    ),
    (_TEST, _VALIDATION): (
        "the server fits its start and picks the round to keep by "
        "task.validation_file, and the test split never chooses anything; "
        "give another file, or null"
    ),
}


def check_named_files(task: TaskSettings) -> str:
    """The test file, once the files are named and each plays one role.

    Raises if a file is missing from its key or named in two roles (see the
    module's list).
    """
    if not task.train_files and task.labels is None:
        raise FedmodelError(
            "task.train_files is empty: list one CSV / TSV / JSONL / Parquet file per "
            "site, e.g. task.train_files='[site0.csv,site1.csv]' (in a deployment "
            "the sites hold their own files: set task.labels instead)"
        )
    if not task.test_file:
        raise FedmodelError(
            "task.test_file is not set: give the file the server evaluates on, "
            "e.g. task.test_file=test.csv"
        )
    seen: dict[Path, tuple[str, str]] = {}
    for role, key, name in _named_files(task):
        path = Path(name).resolve()
        if path in seen:
            first_role, first_key = seen[path]
            raise FedmodelError(
                f"{key}={name!r} is the same file as {first_key}: "
                f"{_WHY[first_role, role]}"
            )
        seen[path] = (role, key)
    return task.test_file


def check_transfer_file(settings: RunSettings) -> None:
    """Refuse a site's file or the test file as the server's distillation texts."""
    name = settings.distill.transfer_file
    if name is None:
        return
    why = {
        _TRAIN: (
            "the server distils the student on distill.transfer_file without "
            "noise, so a site's file there gives the server that site's texts"
        ),
        _TEST: "the student would train on the texts it is then scored on",
    }
    path = Path(name).resolve()
    for role, key, other in _named_files(settings.task):
        if role in why and Path(other).resolve() == path:
            raise FedmodelError(
                f"distill.transfer_file={name!r} is the same file as {key}: "
                f"{why[role]}; give texts the server holds itself, or null for "
                "the task's transfer split"
            )


def clients_are_files(settings: RunSettings) -> bool:
    """Whether each client of a files task holds one file (`partition=natural`)."""
    part = settings.partition
    by_site = part.column in (None, SITE_COLUMN) and part.label_groups is None
    return settings.task.name == "files" and part.name == "natural" and by_site


def client_file(settings: RunSettings, client_id: int) -> str | None:
    """Client `client_id`'s file where `clients_are_files`; a deployment lists none."""
    files = settings.task.train_files
    held = clients_are_files(settings) and client_id < len(files)
    return files[client_id] if held else None


def warn_pooled_files(settings: RunSettings) -> None:
    """Say so when a files task's clients are not its files.

    With any partition but `natural` on the files (`debug=smoke` sets `iid`),
    the files' records are pooled and dealt out again: each client's epsilon
    then covers its share, not one site's file. The server says it once.
    """
    task, partition = settings.task, settings.partition
    if task.name != "files" or clients_are_files(settings):
        return
    logger.warning(
        "partition=%s%s: the %d files of task.train_files are pooled and dealt "
        "out again to %d clients, so a client is not one of your sites; "
        "partition=natural makes each file one client",
        partition.name,
        f" (column {partition.column})" if partition.column else "",
        len(task.train_files),
        settings.num_clients,
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
    train_texts = _as_seen(data.train["text"], normalize)
    for text, site in zip(train_texts, data.train[SITE_COLUMN], strict=True):
        sites[site].append(text)
    _warn_repeats_at_a_site(task, sites)
    _warn_texts_at_two_sites(task, sites)
    test_texts = _as_seen(data.test["text"], normalize)
    _warn_test_texts_at_sites(task, test_texts, sites)
    if data.transfer is not None and task.validation_file:
        used = "fits its start and picks its round on it"
        server_file = ("task.validation_file", task.validation_file, used)
        held = _as_seen(data.transfer["text"], normalize)
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


def _warn_test_texts_at_sites(
    task: TaskSettings, test_texts: Sequence[str], sites: Sequence[Sequence[str]]
) -> None:
    # A test file cut from the same table as a site's scores the model on
    # records it trained on: its accuracy would say more than it should.
    for i, texts in enumerate(sites):
        held = set(texts)
        shared = sum(text in held for text in test_texts)
        if shared:
            logger.warning(
                "%d of the %d records of task.test_file (%s) %s a text that "
                "task.train_files[%d] (%s) holds too: the test accuracy counts "
                "records the model trained on. Take them out of one of the two",
                shared,
                len(test_texts),
                Path(str(task.test_file)),
                plural(shared, "has", "have"),
                i,
                Path(task.train_files[i]),
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


def _named_files(task: TaskSettings) -> Iterator[tuple[str, str, str]]:
    """(role, key, path) of each file a files task names, train files first."""
    for i, name in enumerate(task.train_files):
        yield _TRAIN, f"task.train_files[{i}]", name
    if task.test_file:
        yield _TEST, "task.test_file", task.test_file
    if task.validation_file:
        yield _VALIDATION, "task.validation_file", task.validation_file
