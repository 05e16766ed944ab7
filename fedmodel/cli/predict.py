"""`fedmodel predict`: label texts with an exported teacher or student."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fedmodel.cli.errors import EXIT_OK
from fedmodel.cli.paths import user_path
from fedmodel.errors import FedmodelError
from fedmodel.run.layout import AUTO_RUNTIME, RESOLVED_CONFIG, RUNTIME_FILES

if TYPE_CHECKING:
    from rich.table import Table

    from fedmodel.data.text_inputs import InputTexts
    from fedmodel.serve.inference import Prediction

# `--input -`: the texts come from standard input, one per line.
STDIN = "-"

DESCRIPTION = (
    "Label texts with a model a run exported: its model/ (teacher) or "
    "student/ folder, or an .onnx file inside (ONNX Runtime). A student "
    "folder is served from its int8 ONNX graph unless --runtime says otherwise."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument(
        "--model", required=True, type=user_path, help="model folder or .onnx file"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text (repeatable)")
    source.add_argument(
        "--input",
        type=user_path,
        help=".txt (one text per line, no header; blank lines are skipped, so "
        "each prediction names its line) or CSV/TSV/JSONL/Parquet with a text "
        f"column; {STDIN} reads texts from standard input, one per line",
    )
    parser.add_argument(
        "--text-column",
        default=None,
        help="column of --input holding the texts (default: the run's "
        "task.text_column when --model is in its run folder, else text); a "
        ".txt input starting with this name, 'text' or the run's "
        "task.text_column is refused as a header line",
    )
    parser.add_argument(
        "--top-k", type=int, default=3, help="labels per text (default: 3)"
    )
    parser.add_argument(
        "--runtime",
        choices=(AUTO_RUNTIME, *RUNTIME_FILES),
        default=AUTO_RUNTIME,
        help=(
            "how to run a model folder: auto (its int8 ONNX graph when there, as "
            "for an exported student, else torch), torch, onnx (float graph) or "
            "onnx_int8 (default: auto)"
        ),
    )
    parser.add_argument(
        "--format",
        choices=("table", "jsonl"),
        default="table",
        help="a table for reading, or one JSON object per line",
    )


def run(args: argparse.Namespace) -> int:
    """Predict and print; a bad model or input raises FedmodelError (exit 2)."""
    from rich.console import Console

    from fedmodel.serve.inference import (
        check_model_path,
        check_top_k,
        load_classifier,
        predict,
    )

    check_top_k(args.top_k)
    check_model_path(args.model, runtime=args.runtime)
    if args.text:
        texts, lines = _given_texts(args.text), None
    else:
        given = _file_texts(args)
        texts, lines = given.texts, given.lines
    classifier = load_classifier(args.model, runtime=args.runtime)
    predictions = predict(classifier, texts, top_k=args.top_k)
    # Empty for an export without task.label_descriptions: output as before.
    described = classifier.label_descriptions
    if args.format == "jsonl":
        for row, prediction in enumerate(predictions):
            line = None if lines is None else lines[row]
            shown = _as_json(prediction, line, described)
            print(json.dumps(shown, ensure_ascii=False))
    else:
        Console().print(_as_table(predictions, lines, described))
    return EXIT_OK


def _given_texts(texts: Sequence[str]) -> list[str]:
    """The --text values, refusing a blank one as --input refuses a blank cell."""
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise FedmodelError(
                f"--text number {number} is empty ({text!r}); give the text to "
                'label, e.g. --text "my card was declined"'
            )
    return [text.strip() for text in texts]


def _file_texts(args: argparse.Namespace) -> InputTexts:
    """The texts of --input; the file readers (datasets, pandas) load only here.

    A one-per-line input whose first line is `text`, --text-column or the
    run's own `task.text_column` is refused: a column's export with its header.
    """
    from fedmodel.data.text_inputs import read_input_texts, stdin_texts

    run_column = _run_text_column(args.model)
    header_names = () if run_column is None else (run_column,)
    # A table in the run's own format needs no option.
    text_column = args.text_column or run_column or "text"
    if str(args.input) == STDIN:
        if sys.stdin.isatty():
            # Nothing piped in: without a word the command would seem to hang.
            print(
                "reading texts from the terminal, one per line; end with Ctrl-D",
                file=sys.stderr,
            )
        return stdin_texts(
            sys.stdin.buffer,
            key="--input",
            text_column=text_column,
            header_names=header_names,
        )
    return read_input_texts(
        args.input,
        key="--input",
        text_column=text_column,
        column_option="--text-column",
        header_names=header_names,
    )


def _run_text_column(model: Path) -> str | None:
    """The `task.text_column` of the run that exported `model`, if it is in one.

    A run folder holds its model/ and student/ folders beside its resolved
    config; a model found elsewhere, or a config without the key, gives None.
    """
    from fedmodel.run.run_files import parsed_mapping

    folder = model.parent if model.is_file() else model
    config = folder.parent / RESOLVED_CONFIG
    if not config.is_file():
        return None
    try:
        task = parsed_mapping(config, fix="").get("task")
    except FedmodelError:
        # The run's config serves only these defaults; predict needs none.
        return None
    column = task.get("text_column") if isinstance(task, dict) else None
    return column if isinstance(column, str) else None


def _as_json(
    prediction: Prediction, line: int | None, described: Mapping[str, str]
) -> dict[str, object]:
    """One JSON line; `line` is the text's line number in a one-per-line input.

    With `described` (the export's label descriptions) each label gets a
    `description` beside it; without, the line is as it always was.
    """
    where: dict[str, object] = {} if line is None else {"line": line}
    top = [
        {"label": label, **_description(label, described), "probability": chance}
        for label, chance in zip(
            prediction.labels, prediction.probabilities, strict=True
        )
    ]
    return {**where, "text": prediction.text, **top[0], "top": top}


def _description(label: str, described: Mapping[str, str]) -> dict[str, object]:
    """`{"description": ...}` of `label` where the export has descriptions."""
    return {"description": described.get(label)} if described else {}


def _as_table(
    predictions: Sequence[Prediction],
    lines: list[int] | None,
    described: Mapping[str, str],
) -> Table:
    """The predictions as a table, every text and label shown as written.

    `lines`, each text's line number in a one-per-line input, lead each row:
    its blank lines are skipped, so the n-th row need not be the n-th line.

    Rich reads `[...]` in a plain string as markup and drops it (`see [link]`
    would print as `see `), so texts and labels go in as `Text`. The next best
    labels stand one a line: a label may hold commas (`feces, animals, pets`).
    A label wider than its column is folded, not cut with an ellipsis: cut,
    `getting_virtual_card` would read as a label there is not. With
    `described`, a description column follows the label's, and each next
    best label has its description in brackets.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False)
    if lines is not None:
        table.add_column("line", justify="right")
    table.add_column("text", overflow="fold", max_width=60)
    table.add_column("label", overflow="fold")
    if described:
        table.add_column("description", overflow="fold", max_width=40)
    table.add_column("probability", justify="right")
    table.add_column("next best", overflow="fold")
    for row, prediction in enumerate(predictions):
        where = [] if lines is None else [str(lines[row])]
        others = "\n".join(
            f"{label}{_bracketed(described.get(label))} {probability:.2f}"
            for label, probability in zip(
                prediction.labels[1:], prediction.probabilities[1:], strict=True
            )
        )
        best = prediction.labels[0]
        meaning = [Text(described.get(best, ""))] if described else []
        table.add_row(
            *where,
            Text(prediction.text),
            Text(best),
            *meaning,
            f"{prediction.probabilities[0]:.3f}",
            Text(others),
        )
    return table


def _bracketed(description: str | None) -> str:
    return f" ({description})" if description else ""
