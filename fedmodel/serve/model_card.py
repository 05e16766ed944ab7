"""The model card (README.md) that carries a run's privacy statement with its model.

summary.json stays in the run folder; an exported folder travels. Each
finished run writes a card into `model/` and `student/`: what the model
classifies, how it was trained, the run's privacy guarantee as summary.json
states it (the largest client epsilon over every charge, so never less than
what the model cost), rounded up coarsely enough that it names no client's
record count (a client's default delta is 1/(10 n)), and the test figures. It
names no site and no path on the server's machine: a card goes wherever the
model goes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fedmodel
from fedmodel.config import RunSettings
from fedmodel.config.wording import plural, power_of_ten_up, two_digits_up
from fedmodel.run.layout import (
    MODEL_CARD_FILE,
    ONNX_FILE,
    QUANTIZED_ONNX_FILE,
    STUDENT_DIR,
    TEACHER_DIR,
)
from fedmodel.run.summary import changed_rounds
from fedmodel.serve.exported_folder import read_exported_folder

# Each model a run exports, and its folder in the run folder.
MODEL_FOLDERS = {"teacher": TEACHER_DIR, "student": STUDENT_DIR}

_FRONT_MATTER = """---
library_name: transformers
pipeline_tag: text-classification
tags:
- fedmodel
- federated-learning
- differential-privacy
---
"""


def write_model_cards(summary: Mapping[str, Any], settings: RunSettings) -> list[Path]:
    """Write README.md into the teacher's and the student's folders; their paths."""
    return [
        write_card(summary, settings, role=role, folder=Path(entry["dir"]))
        for role in MODEL_FOLDERS
        if isinstance(entry := summary.get(role), Mapping)
    ]


def write_card(
    summary: Mapping[str, Any], settings: RunSettings, *, role: str, folder: Path
) -> Path:
    """Write the card of `role`'s model, exported in `folder`; its path.

    Whole or not at all: a card cut short by a stop could end inside its
    epsilon ("at most 2" of "at most 2.5"). The temp file is written as the
    export's files are, readable as the umask allows, and removed if the
    write fails.
    """
    path = folder / MODEL_CARD_FILE
    temp = card_temp(folder)
    try:
        temp.write_text(model_card(summary, settings, role=role, folder=folder))
        temp.replace(path)
    finally:  # a card cut short must not travel with the model's folder
        temp.unlink(missing_ok=True)
    return path


def card_temp(folder: Path) -> Path:
    """Where `write_card` writes `folder`'s card before renaming it into place."""
    return folder / f"{MODEL_CARD_FILE}.tmp"


def remove_cut_cards(run_dir: Path) -> list[Path]:
    """Delete the cut cards a kill left in the run's model folders; those removed.

    `write_card` removes its own temp file when a stop or a full disk cuts
    it short; a killed process cannot.
    """
    stale = [card_temp(run_dir / name) for name in MODEL_FOLDERS.values()]
    stale = [temp for temp in stale if temp.is_file()]
    for temp in stale:
        temp.unlink(missing_ok=True)
    return stale


def model_card(
    summary: Mapping[str, Any], settings: RunSettings, *, role: str, folder: Path
) -> str:
    """The card of `role` ("teacher" or "student"), exported in `folder`."""
    exported = read_exported_folder(folder)
    labels = len(exported.label_names)
    clients = settings.num_clients
    # Rounds that changed the model, empty privacy=central draws too (to leave
    # them out would tell the model's holders how many draws came out empty).
    rounds = int(summary["rounds_completed"])
    lines = [
        _FRONT_MATTER,
        f"# {settings.task.name} text classifier ({role}), made by fedmodel "
        f"{fedmodel.__version__}",
        "",
        f"Labels one text with one of {labels} labels (`id2label` in config.json). "
        f"{'Trained' if role == 'teacher' else 'Its teacher was trained'} by "
        f"federated learning: {clients} {plural(clients, 'client')} each trained it "
        "on its own records, which never left it, and a server averaged their "
        f"updates over {rounds} {plural(rounds, 'round')} "
        f"(`finetune={settings.finetune.mode}`).{_kept_start(summary, rounds)}",
        *_described(exported.label_names, exported.label_descriptions),
        "",
        "## Privacy",
        "",
        _privacy(summary["privacy_guarantee"]),
    ]
    if role == "student":
        lines += ["", _student(settings, summary)]
    lines += ["", "## Test results", "", *_results(summary, role), "", *_use(folder)]
    return "\n".join(lines) + "\n"


def _described(labels: tuple[str, ...], described: Mapping[str, str]) -> list[str]:
    """The labels and what each means, where the export kept descriptions.

    The operator's task.label_descriptions, public as the label names are;
    coded labels (`3`, `J45`) read as nothing without them.
    """
    if not described:
        return []
    rows = [_row(_code(name), described.get(name, "")) for name in labels]
    return ["", "## Labels", "", _row("label", "description"), "|---|---|", *rows]


def _row(*cells: str) -> str:
    r"""One Markdown table row: a line break or a bare `|` in a cell broke the table.

    GFM reads `\|` as a pipe inside a cell, code spans included.
    """
    kept = (" ".join(cell.split()).replace("|", "\\|") for cell in cells)
    return f"| {' | '.join(kept)} |"


def _code(text: str) -> str:
    """`text` as one code span, whatever backticks it holds.

    CommonMark ends a span at a run as long as its fence: the fence is one
    longer than any run inside, and a space keeps an end's backtick off it.
    """
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _kept_start(summary: Mapping[str, Any], rounds: int) -> str:
    """What to add when keep_best kept the start over every round's model.

    The teacher is then the starting model (label names or the warm start on
    server-held texts), which holds no client's update: the card must not
    read as if the rounds made it.
    """
    if summary.get("selected_round") != 0 or rounds == 0:
        return ""
    return (
        " None of those rounds' models scored better than the starting model "
        "on the server's own validation split, so the server kept the start "
        "(`selected_round` 0 in summary.json): the teacher holds no client's "
        "update."
    )


def _privacy(guarantee: Mapping[str, Any]) -> str:
    level, epsilon = guarantee.get("level"), guarantee.get("epsilon")
    if level is None:
        return (
            "**No differential privacy** (`privacy=off`): the model may reveal "
            "records it was trained on. Share it only with those who may see "
            "the clients' records."
        )
    protected = {
        "record": "any one record of a client (DP-SGD on each client, Opacus)",
        "client": "any one client's whole contribution (noise the server adds)",
    }[level]
    if epsilon is None and guarantee.get("unstated"):
        return (
            f"**Differential privacy for {protected}**, at a cost this card "
            f"does not state: {guarantee['unstated']}, and a figure from the "
            "clients' reports alone could be less than was spent."
        )
    if epsilon is None:
        return (
            f"**Differential privacy for {protected}**, at a cost no client "
            "reported to the server: each client's privacy ledger holds it."
        )
    counted = {
        "record": "the largest any client was charged, every round it trained "
        "in counted, used or not (each client keeps its own budget; a deployed "
        "site's ledger also counts its earlier runs on the same records)",
        "client": "one for every client, every round of the run counted",
    }[level]
    # A record-level delta is 1/(10 n) of the smallest client by default, so
    # it is given only to its power of ten; a client-level one, 1/(10 N) of the
    # number of clients the card states anyway, to two digits.
    delta = guarantee["delta"]
    coarse = level == "record"
    rounded = (
        "Both figures are rounded up, never down, and coarsely: each client's "
        "delta and epsilon follow from its number of records, which the card "
        "does not give (the run's summary.json, which stays with the server, "
        "has the exact figures)."
        if coarse
        else "Both figures are rounded up, never down."
    )
    return (
        f"**Differential privacy for {protected}:** epsilon at most "
        f"{two_digits_up(epsilon)}, delta at most "
        f"{power_of_ten_up(delta) if coarse else two_digits_up(delta)}, by the "
        f"{guarantee['accountant'].upper()} "
        f"accountant (target epsilon {guarantee['target_epsilon']:g}). The "
        f"epsilon is {counted}; the model and anything computed from it keep "
        f"the guarantee. {rounded}"
    )


def _student(settings: RunSettings, summary: Mapping[str, Any]) -> str:
    """How the student was made: its federated rounds those that changed it."""
    if settings.distill.transfer_file is not None:
        source = "`distill.transfer_file`"
    elif settings.task.name == "files":
        source = "`task.validation_file`"
    else:
        source = "the task's transfer split"
    said = (
        "The student was distilled from the teacher on texts the server holds "
        f"({source})"
    )
    private = settings.privacy.enabled
    rounds = changed_rounds(summary.get("rounds") or [], "student")
    if rounds:
        said += (
            f", then in {rounds} federated {plural(rounds, 'round')} by the "
            "clients on their own records"
        )
        if private:
            said += (
                " under the same DP-SGD, charged to the clients' budgets and "
                "counted above"
            )
        return f"{said}."
    said += ", never on a client's record"
    return f"{said}: it keeps the teacher's guarantee." if private else f"{said}."


def _results(summary: Mapping[str, Any], role: str) -> list[str]:
    """The test figures; a student's int8 graph too, which `predict` serves.

    The student's own row is its float weights': `fedmodel predict` runs its
    int8 graph unless told otherwise, whose figures are its own row.
    """
    rows = [_row("model", "test accuracy", "macro-F1"), "|---|---|---|"]
    for name in ("teacher", "student"):
        entry = summary.get(name)
        if isinstance(entry, Mapping) and (name == role or role == "student"):
            this = " (this one)" if name == role else ""
            rows.append(_row(f"{name}{this}", *_figures(entry)))
    quantized = summary.get(role, {}).get("quantized")
    if isinstance(quantized, Mapping):
        graph = f"{role}, int8 graph {_code(QUANTIZED_ONNX_FILE)}"
        served = "(what `fedmodel predict` serves by default)"
        rows.append(_row(f"{graph} {served}", *_figures(quantized)))
    return [*rows, "", "On the server's own test split, which chose nothing."]


def _figures(entry: Mapping[str, Any]) -> tuple[str, str]:
    return f"{entry['accuracy']:.4f}", f"{entry['macro_f1']:.4f}"


def _use(folder: Path) -> list[str]:
    onnx = f"`{ONNX_FILE}`"
    if (folder / QUANTIZED_ONNX_FILE).is_file():
        onnx += f" (and `{QUANTIZED_ONNX_FILE}`, int8)"
    return [
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        'model = AutoModelForSequenceClassification.from_pretrained("PATH", '
        "trust_remote_code=True)",
        'tokenizer = AutoTokenizer.from_pretrained("PATH")',
        "```",
        "",
        f"or `fedmodel predict --model PATH --text '...'`; {onnx} runs in ONNX "
        "Runtime. The run folder's `summary.json` and `resolved_config.yaml` "
        "hold every figure and setting of the run.",
    ]
