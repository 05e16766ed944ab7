"""What the docs say a command prints is what it prints today.

README.md and docs/*.md quote fedmodel's own lines, and a changed message
leaves a quote the user then searches their console for in vain. Checking a
quote against the package's strings is not robust (a message is built from
several strings, with placeholders), so this runs the command the doc names
right before its quote: each `fedmodel ...` line the docs follow with
"prints" or "answers" and a quoted line (the refusals and warnings that need
no run, a few seconds each). A quote's `...` leaves words out: each part
between them must be in what the command printed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fedmodel.cli.main import run_command

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `fedmodel COMMAND ...`, a few words at most, "prints"/"answers", `the quote`.
QUOTED = re.compile(
    r"`(fedmodel [a-z-]+ [^`]*)`([^`.;]{0,40}?)\b(?:prints|answers):?\s*`([^`]+)`"
)


def _quoted_runs() -> list[tuple[str, str, str]]:
    """(doc file, command, quote) for each command the docs quote the output of."""
    runs = []
    for doc in DOCS:
        text = " ".join(doc.read_text(encoding="utf-8").split())
        for match in QUOTED.finditer(text):
            runs.append((doc.name, match.group(1), match.group(3)))
    return runs


RUNS = _quoted_runs()


def test_the_docs_quote_what_some_commands_print() -> None:
    # Guards the pattern: a rewording of the docs that it no longer finds
    # would leave the test below checking nothing.
    assert len(RUNS) >= 4, RUNS


@pytest.mark.parametrize(
    ("doc", "command", "quote"), RUNS, ids=[f"{d}:{c}" for d, c, _ in RUNS]
)
def test_a_quoted_line_is_what_its_command_prints(
    doc: str,
    command: str,
    quote: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # a refused simulate may make a run folder
    run_command(shlex.split(command)[1:])
    out, err = capsys.readouterr()
    printed = " ".join(f"{out}\n{err}".split())
    for part in quote.split("..."):
        part = part.strip(" ;,")
        assert part in printed, (
            f"{doc} quotes `{part}`; `{command}` printed:\n{printed}"
        )
