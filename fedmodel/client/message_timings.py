"""A deployed site's timings of each message, kept in its own state directory.

Flower starts a ClientApp process for every message, so what a round imports
and loads is paid every round: one line per message says where its time went.
The file stays at the site; `benchmarks/deployment_overhead.py` reads it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

# In a site's state directory: one line of timings per message (local only).
MESSAGE_TIMINGS = "message_timings.jsonl"


def record_message_timings(
    state_dir: Path,
    *,
    round_number: int,
    app_import_started: float,
    moments: tuple[float, float, float],
    prepare_seconds: float,
) -> None:
    """Append one train message's timings (seconds per stage) to the site's state dir.

    `process_start` is the time from the ClientApp process's start (Flower
    starts one per message) to the start of the app's import: Python's start,
    Flower's imports and loading the app. `moments` are when the train handler
    started (the app's imports done), when the records were read and when the
    round ended; `prepare_seconds` of the round built its job, the model and
    its inputs (`RoundOutcome.prepare_seconds`: in head mode's first round the
    records' embedding; the records are tokenized as they are read). The
    numbers stay at the site.
    """
    import psutil

    started = psutil.Process().create_time()
    entered, data_loaded, trained = moments
    stages = {
        "imports": entered - app_import_started,
        "data": data_loaded - entered,
        "model_load": prepare_seconds,
        "training": trained - data_loaded - prepare_seconds,
        "reply": time.time() - trained,
    }
    line = {
        "round": round_number,
        "process_start": max(app_import_started - started, 0.0),
        **{key: round(value, 4) for key, value in stages.items()},
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / MESSAGE_TIMINGS).open("a") as handle:
        handle.write(json.dumps(line) + "\n")
