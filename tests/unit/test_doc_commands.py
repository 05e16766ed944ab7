"""Every command line the docs show names a real command, option and config key.

README.md and docs/*.md show some 400 `fedmodel ...`, `make`, benchmark and
launcher lines; a renamed option, key or target leaves one failing for the
first user who copies it (test_doc_links checks links only). Each line is read
with fedmodel's own parser (Hydra's for simulate), its overrides with
fedmodel's override checks against the composed config; nothing runs. Options
are spelled in full (argparse would take `--run` for `--run-dir`).

A `flwr run` line's `--run-config` is read with Flower's own parser, and its
`overrides` as the ServerApp splits them, then checked as simulate's are.

Skipped: a line whose first word is not the program (a log line, prose),
output (`fedmodel simulate: error: ...`) and placeholders: `<...>` is one
placeholder word, and a word in capitals (RUN_DIR, OVERRIDES), holding
`...` or in `[...]` is the reader's to fill in (`seed=N`: the key is checked).
`a|b` (`\\|` in a table) is checked as a and as b.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import re
import shlex
import subprocess
import sys
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from fedmodel.cli.main import build_parser
from fedmodel.cli.simulate import VERBOSE_FLAGS
from fedmodel.config.compose import (
    CONF_DIR,
    HYDRA_GROUP,
    check_overrides,
    compose_config,
    config_groups,
    group_options,
    named_options,
    override_parser,
)
from fedmodel.config.flat_keys import dotted
from fedmodel.config.run_config import FLWR_RUN_CONFIG, app_overrides
from fedmodel.config.sweep_jobs import sweep_jobs
from fedmodel.errors import FedmodelError
from tests.unit.test_benchmark_help import SCRIPTS as PARSING_BENCHMARKS
from tests.unit.test_doc_links import PAGES, ROOT

# Words ahead of the program: a prompt, VAR=value, time or timeout and theirs.
LAUNCHER = re.compile(r"\$|\w+=\S*|time|/usr/bin/time|timeout|-v|\d+[smh]?|bash")
PYTHON = re.compile(r"(\S*/)?python[\d.]*")
SCRIPT = re.compile(r"(\./)?((benchmarks|simulations)/[\w.-]+\.(py|sh))")
OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
OVERRIDE = re.compile(r"[^-][^=]*=.*|~.*")
PLACEHOLDER = re.compile(r"\S*\.\.\.\S*|\[.*\]|[A-Z][A-Z_\d]*")
SHELL_BREAKS = {"|", "||", "&&", "&"}
# Lines the docs show being refused, each with the words of its refusal here.
SHOWN_REFUSED = {
    "fedmodel simulate num_client=3": "no key num_client",
    "fedmodel simulate ~privacy.target_delta": "cannot delete config key",
    "fedmodel privacy-plan model=nope model=tiny debug=smoke": "no option 'nope'",
}


PROGRAMS = ("fedmodel", "flwr", "make")

# One command line a page shows: `page:line`, and its words from the program on.
Shown = tuple[str, tuple[str, ...]]


def _code(page: Path) -> Iterator[tuple[int, str]]:
    """Each code block line (continuations joined) and inline code span, by line."""
    prose: list[str] = []
    block: tuple[int, str] | None = None
    in_block = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block, line = not in_block, ""
        elif in_block:
            block = (block[0], block[1][:-1] + line) if block else (number, line)
            if not line.rstrip().endswith("\\"):
                yield block
                yield from _spans(block[1], at=block[0])  # architecture.md's tree
                block = None
            line = ""
        prose.append(line)
    yield from _spans("\n".join(prose), at=1)


def _spans(text: str, *, at: int) -> Iterator[tuple[int, str]]:
    """Each inline code span in `text` (which starts on line `at`), by its line."""
    for span in re.finditer(r"(`+)(.+?)\1", text, re.DOTALL):
        yield at + text.count("\n", 0, span.start()), span.group(2)


def _commands(text: str) -> Iterator[tuple[str, ...]]:
    """The commands in one line of shell, each from its program on."""
    text = re.sub(r"<[^<>]*>", "PLACEHOLDER", text)
    # Not split at `;` or `(`: in a message quoted they end or open a clause.
    lexer = shlex.shlex(text.replace("\n", " "), posix=True, punctuation_chars="|&")
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unclosed quote: prose, or output cut short
        return
    for is_break, command in itertools.groupby(words, SHELL_BREAKS.__contains__):
        if not is_break:
            yield _program(list(command))


def _program(words: list[str]) -> tuple[str, ...]:
    """`words` from the program on: fedmodel, make or a script (else none)."""
    while words and LAUNCHER.fullmatch(words[0]):
        words = words[1:]
    if words and PYTHON.fullmatch(words[0]):  # python [its options] SCRIPT|-m fedmodel
        for at, word in enumerate(words[1:], 1):
            if SCRIPT.fullmatch(word) or (word == "fedmodel" and words[at - 1] == "-m"):
                return tuple(words[at:])
        return ()
    return tuple(words)


@functools.cache
def shown_commands(page: Path) -> list[Shown]:
    """The fedmodel, flwr, make and script command lines `page` shows, but output."""
    return [
        (f"{page.name}:{line}", words)
        for line, text in _code(page)
        for words in _commands(text)
        if words
        and (words[0] in PROGRAMS or SCRIPT.fullmatch(words[0]))
        # `fedmodel simulate: error: ...` is a command's output
        and not any(word.endswith(":") for word in words[:2])
    ]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands under `parser` by name and alias; none for a leaf command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


@functools.cache
def _simulate_options() -> set[str]:
    """simulate's options: Hydra's flags, which Hydra's parser reads, and -v."""
    from hydra._internal.utils import get_args_parser

    return _options(get_args_parser()) | set(VERBOSE_FLAGS)


@functools.cache
def _fedmodel_parser() -> argparse.ArgumentParser:
    return build_parser()


def fedmodel_problems(words: tuple[str, ...]) -> list[str]:
    """What is wrong with `fedmodel WORDS...`: command, options, overrides."""
    parser, rest = _fedmodel_parser(), list(words[1:])
    while rest and not rest[0].startswith("-") and (commands := _subparsers(parser)):
        missing = [name for name in rest[0].split("|") if name not in commands]
        if missing:
            return [f"no command {missing[0]!r} (commands: {', '.join(commands)})"]
        parser, rest = commands[rest[0].split("|")[0]], rest[1:]
    simulate = parser.prog == "fedmodel simulate"  # Hydra reads its arguments
    options = _simulate_options() if simulate else _options(parser)
    takes_overrides = simulate or any(a.dest == "overrides" for a in parser._actions)
    problems = _unknown_options(rest, options)
    overrides = [word for word in rest if OVERRIDE.fullmatch(word)]
    if overrides and not takes_overrides:
        problems.append(f"takes no overrides: {' '.join(overrides)}")
    return problems + (override_problems(overrides) if takes_overrides else [])


def _unknown_options(words: list[str], options: Collection[str]) -> list[str]:
    """Each option in `words` (`--out=x`: `--out`; up to a bare --) not in `options`."""
    given = words[: words.index("--")] if "--" in words else words
    names = [word.split("=")[0] for word in given if OPTION.match(word)]
    known = ", ".join(sorted(options))
    return [
        f"{name}: no such option ({known})" for name in names if name not in options
    ]


def override_problems(overrides: list[str]) -> list[str]:
    """What is wrong with Hydra overrides: fedmodel's refusals, then unknown names."""
    from hydra.errors import HydraException

    try:
        check_overrides(overrides)
        parsed = zip(
            overrides, override_parser().parse_overrides(overrides), strict=True
        )
    except (FedmodelError, HydraException) as exc:
        return [str(exc)]
    groups, chosen, keys = set(config_groups()), {}, []
    for text, override in parsed:
        if override.key_or_group in groups:
            chosen[text] = override
        else:
            keys.append(override.key_or_group)
    wrong = [
        f"no option {option!r} in config group {o.key_or_group!r}"
        for o in chosen.values()
        if not o.is_delete()
        for option in named_options(o)
        if option not in group_options(o.key_or_group)
    ]
    if wrong or not keys:
        return wrong
    known, said = _config_keys(tuple(chosen)), " ".join(chosen) or "defaults"
    return [
        f"no key {key} in the config (with {said})" for key in keys if key not in known
    ]


@functools.cache
def _config_keys(choices: tuple[str, ...]) -> frozenset[str]:
    """The dotted keys and their parents (`distill.student`) of each job `choices`
    compose, and Hydra's own (`hydra.run.dir`).
    """
    leaves = set(_hydra_keys())
    for job in sweep_jobs(list(choices)):
        leaves.update(dotted(compose_config(job)))
    parts = (key.split(".") for key in leaves)
    return frozenset(".".join(p[:end]) for p in parts for end in range(1, len(p) + 1))


@functools.cache
def _hydra_keys() -> frozenset[str]:
    """Hydra's own keys (`hydra.run.dir`), as its packaged config sets them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True)
    hydra = OmegaConf.to_container(cfg[HYDRA_GROUP], resolve=False)
    assert isinstance(hydra, dict)
    return frozenset(dotted({HYDRA_GROUP: hydra}))


def make_problems(words: tuple[str, ...]) -> list[str]:
    """The words of `make WORDS...` that are no Makefile target (VAR=x aside)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    known = re.findall(r"^([\w-]+):", makefile, re.MULTILINE)
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    return [f"no make target {t!r}" for t in targets if t not in known]


def flwr_problems(words: tuple[str, ...]) -> list[str]:
    """What is wrong with a `flwr run ... --run-config VALUE` line's run-config.

    Its keys must be the app's (`FLWR_RUN_CONFIG`), and its `overrides` pass
    as simulate's do. Other `flwr` lines (list, log, stop) are Flower's own.
    """
    from flwr.common.config import parse_config_args

    if words[1:2] != ("run",) or "--run-config" not in words[:-1]:
        return []
    run_config = parse_config_args([words[words.index("--run-config") + 1]])
    foreign = sorted(set(run_config) - set(FLWR_RUN_CONFIG))
    if foreign:
        return [
            f"run-config keys {foreign} are not the app's ({list(FLWR_RUN_CONFIG)})"
        ]
    overrides = app_overrides(run_config)
    assert overrides is not None  # the app's keys only, checked above
    return override_problems(overrides)


def script_problems(words: tuple[str, ...]) -> list[str]:
    """A missing script, an option a benchmark's --help lacks, a bad override."""
    match = SCRIPT.fullmatch(words[0])
    assert match
    script = ROOT / match.group(2)
    if not script.is_file():
        return [f"no such script {match.group(2)}"]
    parses = script in PARSING_BENCHMARKS  # one that takes no arguments would run
    options = _benchmark_options(script) if parses else frozenset()
    overrides = [word for word in words[1:] if OVERRIDE.fullmatch(word)]
    return _unknown_options(list(words[1:]), options) + override_problems(overrides)


@functools.cache
def _benchmark_options(script: Path) -> frozenset[str]:
    """The options a benchmark's `--help` lists (fast: it parses before importing)."""
    argv = [sys.executable, str(script), "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return frozenset(OPTION.findall(done.stdout))


def problems(words: tuple[str, ...]) -> list[str]:
    """What is wrong with one shown command line (none where it reads right)."""
    checked = tuple(word for word in words if not PLACEHOLDER.fullmatch(word))
    if words[0] == "make":
        return make_problems(checked)
    if words[0] == "fedmodel":
        return fedmodel_problems(checked)
    if words[0] == "flwr":
        return flwr_problems(checked)
    return script_problems(checked)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_command_a_page_shows_is_real(page: Path) -> None:
    wrong = [
        f"{where}: {shlex.join(words)}\n    {problem}"
        for where, words in shown_commands(page)
        if " ".join(words) not in SHOWN_REFUSED
        for problem in problems(words)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("command", sorted(SHOWN_REFUSED))
def test_a_line_shown_refused_is_still_refused(command: str) -> None:
    shown = {" ".join(words) for page in PAGES for _, words in shown_commands(page)}
    assert command in shown, "no page shows it now: take it out of SHOWN_REFUSED"
    said = problems(tuple(shlex.split(command)))
    assert any(SHOWN_REFUSED[command] in problem for problem in said), said
