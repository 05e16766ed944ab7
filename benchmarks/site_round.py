"""Where a deployed site's round spends its time, pass by pass, rounds 1 and 2.

A files-task site of N records (Banking77's training texts, repeated with a
counter appended so every record is distinct, 77 intents) answers two train
messages through the ClientApp's real train handler, as a SuperNode hands
them to it (`tests/unit/test_site.py` calls it the same way), with DP-SGD at
the site's cap (epsilon 8) and fedmodel's settings for the finetune mode. A
timer is put around each function that makes a pass over the site's records
or features, looked up where the round looks it up; each still runs. The
table gives each pass's calls, seconds and share of the handler's time,
round 1 beside round 2; "rest" is what no timer holds (settings, the reply).

Round 1 reads the file, tokenizes its texts (counting from those tokens the
ones `task.max_length` cuts), plans the noise, opens the ledger and, in head
mode, embeds the records; round 2 of head mode trains on the features round
1 stored, while LoRA reads and tokenizes the file in every round (each
message is a fresh process at a real site). Here both rounds share one
process, and torch uses every core (a real site's SuperNode runs its
ClientApp on one thread: docs/deployment.md).

    .venv/bin/python benchmarks/site_round.py [--records 20000,100000] \
        [--modes head,lora] [--model tiny]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.

# (module, attribute, the pass it makes): the functions a site's round calls,
# patched where the round looks them up. A pass called inside another (the
# tokenizer's load, the tokenization) is counted as its own, not the caller's.
PASSES = (
    ("fedmodel.client.site_data", "site_file_key", "hash the file (features key)"),
    ("fedmodel.client.site_data", "site_features", "read stored features"),
    ("fedmodel.data.files", "load_site_file", "read and check the file"),
    ("fedmodel.model.load", "load_tokenizer", "load the tokenizer"),
    ("fedmodel.client.site_data", "_tokenized_saying_cuts", "say the cut texts"),
    ("fedmodel.data.tokenization", "tokenized_with_cuts", "tokenize, counting cuts"),
    ("fedmodel.data.cut_texts", "tokenize_texts", "count cut texts: tokenize"),
    ("fedmodel.data.tokenization", "tokenize_texts", "tokenize for the model"),
    ("fedmodel.client.site_data", "data_fingerprint", "fingerprint"),
    ("fedmodel.training.embedding_cache", "data_fingerprint", "fingerprint"),
    ("fedmodel.client.private_round", "data_fingerprint", "fingerprint"),
    ("fedmodel.privacy.reset_overlap", "record_digests", "record digests"),
    ("fedmodel.model.load", "build_classifier", "build the model"),
    ("fedmodel.training.embedding_cache", "embed_split", "embed (the encoder)"),
    ("fedmodel.training.embedding_cache", "write_features", "store the features"),
    ("fedmodel.client.jobs", "text_loader", "text loader (the rest)"),
    ("fedmodel.client.private_round", "plan_client", "plan (noise calibration)"),
    ("fedmodel.privacy.ledger", "PrivacyLedger.charge", "charge the ledger"),
    ("fedmodel.client.private_round", "note_charged_records", "write the digests"),
    ("fedmodel.client.local_round", "train_epochs", "DP-SGD steps"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="20000", help="site sizes, e.g. 20000")
    parser.add_argument("--modes", default="head,lora", help="finetune modes")
    parser.add_argument("--model", default="tiny", choices=("tiny", "minilm"))
    args = parser.parse_args(argv)
    args.records = [int(n) for n in args.records.split(",")]
    args.modes = args.modes.split(",")
    if not all(n > 0 for n in args.records):
        parser.error(f"--records: sizes must be positive, not {args.records}")
    if not set(args.modes) <= {"head", "lora", "full"}:
        parser.error(f"--modes: head, lora or full, not {args.modes}")
    return args


def write_site_file(path: Path, records: int) -> list[str]:
    """`records` distinct Banking77 records as a site's CSV; the 77 label names."""
    import pandas as pd

    from fedmodel.config import compose_config, settings_from_dict
    from fedmodel.data.tasks import load_task

    task = load_task(settings_from_dict(compose_config(["model=tiny"])).task, seed=0)
    names = list(task.label_names)
    texts, labels = task.train["text"], task.train["label"]
    rows = [
        (texts[i % len(texts)], names[labels[i % len(texts)]], i // len(texts))
        for i in range(records)
    ]
    pd.DataFrame(
        {
            "text": [text if k == 0 else f"{text} #{k}" for text, _, k in rows],
            "label": [label for _, label, _ in rows],
        }
    ).to_csv(path, index=False)
    return names


def site_settings(mode: str, model: str, labels: list[str]) -> Any:
    from fedmodel.config import compose_config, settings_from_dict

    raw = compose_config(
        [
            "federation=deployment",
            "task=files",
            f"model={model}",
            f"finetune={mode}",
            "task.test_file=server-test.csv",
            "num_clients=2",
            "num_rounds=3",
        ]
    )
    raw["task"]["labels"] = labels
    return settings_from_dict(raw)


def train_message(settings: Any, round_number: int) -> Any:
    """The train message a SuperNode hands the ClientApp, with the start weights."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, Metadata, RecordDict

    from fedmodel import __version__
    from fedmodel.config import to_run_config
    from fedmodel.federation.messages import ARRAYS_KEY, VERSION_KEY
    from fedmodel.model.finetune import prepare_for_finetuning
    from fedmodel.model.head import trainable_state
    from fedmodel.model.load import build_classifier

    labels = tuple(settings.task.labels)
    model = build_classifier(settings.model, label_names=labels, seed=0)
    weights = trainable_state(prepare_for_finetuning(model, settings.finetune))
    config: dict[str, Any] = dict(to_run_config(dataclasses.asdict(settings)))
    config.update({"server-round": round_number, VERSION_KEY: __version__})
    metadata = Metadata(
        run_id=1,
        message_id=f"train-{round_number}",
        src_node_id=0,
        dst_node_id=7,
        reply_to_message_id="",
        group_id=str(round_number),
        created_at=time.time(),
        ttl=3600.0,
        message_type="train",
    )
    content = RecordDict(
        {ARRAYS_KEY: ArrayRecord(weights), "config": ConfigRecord(config)}
    )
    # As Flower builds the message a SuperNode receives (no public overload).
    return Message(content=content, metadata=metadata)  # type: ignore[call-overload]


@contextlib.contextmanager
def timed_passes(spent: dict[str, list[float]]) -> Iterator[None]:
    """Time each pass into `spent` (label: calls' seconds) while the block runs.

    A call's seconds leave out those of the passes it calls, so that no
    second is counted twice.
    """
    patched: list[tuple[Any, str, Callable[..., Any]]] = []
    inner: list[float] = []  # the seconds of passes called by each open call

    def timer(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            inner.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - started
                spent.setdefault(label, []).append(took - inner.pop())
                if inner:
                    inner[-1] += took

        return timed

    for module, dotted, label in PASSES:
        owner: Any = importlib.import_module(module)
        *within, name = dotted.split(".")
        for attribute in within:
            owner = getattr(owner, attribute)
        patched.append((owner, name, getattr(owner, name)))
        setattr(owner, name, timer(getattr(owner, name), label))
    try:
        yield
    finally:
        for owner, name, fn in reversed(patched):
            setattr(owner, name, fn)


def site_rounds(site_file: Path, state: Path, settings: Any) -> list[dict[str, Any]]:
    """Rounds 1 and 2 of a site with a new state folder: seconds per pass."""
    from flwr.app import Context, RecordDict

    from fedmodel.federation import client_app
    from fedmodel.federation.messages import METRICS_KEY

    node: dict[str, bool | float | int | str] = {
        "site-id": 3,
        "data-file": str(site_file),
        "state-dir": str(state),
        "max-epsilon": 8.0,
    }
    rounds = []
    for round_number in (1, 2):
        message = train_message(settings, round_number)
        context = Context(
            run_id=1, node_id=7, node_config=node, state=RecordDict(), run_config={}
        )
        spent: dict[str, list[float]] = {}
        with timed_passes(spent):
            started = time.perf_counter()
            reply = client_app.train(message, context)
            total = time.perf_counter() - started
        if reply.has_error():
            raise SystemExit(f"round {round_number}: {reply.error.reason}")
        metrics = reply.content.metric_records[METRICS_KEY]
        rounds.append({"total": total, "spent": spent, "steps": metrics["steps"]})
    return rounds


def print_table(title: str, rounds: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'pass':32} {'round 1':>22} {'round 2':>22}")
    labels = list(dict.fromkeys(label for _, _, label in PASSES))
    for label in [*labels, "rest"]:
        cells = []
        for one in rounds:
            calls = one["spent"].get(label, [])
            seconds = sum(calls)
            if label == "rest":
                seconds = one["total"] - sum(map(sum, one["spent"].values()))
            share = 100 * seconds / one["total"]
            count = f"x{len(calls)}" if calls else ""
            cells.append(f"{count:>3} {seconds:8.3f} s {share:5.1f}%")
        if any(label in one["spent"] for one in rounds) or label == "rest":
            print(f"{label:32} {cells[0]:>22} {cells[1]:>22}")
    totals = [f"{one['total']:8.2f} s" for one in rounds]
    print(f"{'handler, whole round':32} {totals[0]:>22} {totals[1]:>22}")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="site-round-") as folder:
        work = Path(folder)
        for records in args.records:
            site_file = work / f"site-{records}.csv"
            labels = write_site_file(site_file, records)
            for mode in args.modes:
                settings = site_settings(mode, args.model, labels)
                rounds = site_rounds(
                    site_file, work / f"state-{mode}-{records}", settings
                )
                print_table(
                    f"{records:,} records, finetune={mode}, model={args.model} "
                    f"(DP-SGD steps by round 2: {rounds[1]['steps']:.0f})",
                    rounds,
                )


if __name__ == "__main__":
    main()
