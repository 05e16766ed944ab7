"""The front door: `fedmodel --help`, `--version`, fast help, one error format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedmodel import __version__
from fedmodel.cli.main import COMMANDS, build_parser, run_command
from tests.unit.cli_probe import probed

ALL_COMMANDS = ["simulate", *(c.name for c in COMMANDS), "report"]


def test_help_lists_every_command_with_its_summary_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        run_command(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "simulate" in out
    for command in COMMANDS:
        assert command.name in out
        # argparse may wrap a summary; its words are all there in order.
        assert " ".join(command.summary.split()) in " ".join(out.split())


def test_help_names_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    # A job scheduler or systemd unit reads these: a stopped run's 130 and 143
    # as well as the deployment commands' Flower codes.
    with pytest.raises(SystemExit):
        run_command(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 done, 1 a finding" in out
    assert "2 bad input or config" in out
    assert "130 simulate or resume stopped by Ctrl-C and 143 by SIGTERM" in out
    assert "superlink and supernode exit with Flower's codes" in out
    assert "143 for a SuperLink stopped by SIGTERM" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run_command(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"fedmodel {__version__}"


@pytest.mark.parametrize("module", ["fedmodel", "fedmodel.cli.main"])
def test_python_dash_m_runs_the_command(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"fedmodel {__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run_command([])
    assert done.value.code == 2
    assert "fedmodel: error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "choices"), [("ledger", "{show,reset}"), ("certs", "{superlink,site}")]
)
def test_a_missing_subcommand_is_named_by_its_choices(
    command: str, choices: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `fedmodel ledger` alone said "the following arguments are required: what".
    with pytest.raises(SystemExit) as done:
        run_command([command])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(
        f"fedmodel {command}: error: the following arguments are required: {choices}\n"
    )
    assert f"usage: fedmodel {command} [-h] {choices} ...\n" in err


def test_every_subcommand_has_a_description_and_help_on_each_option() -> None:
    parser = build_parser()
    for command in COMMANDS:
        sub = parser._subparsers._group_actions[0].choices[command.name]  # type: ignore[union-attr]
        assert sub.description
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{command.name} {action.option_strings}"


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_help_imports_no_heavy_module(command: str) -> None:
    result, done = probed(command, "--help")
    assert result == {"code": 0, "heavy": []}, done.stderr[-2000:]
    assert "usage" in done.stdout.lower() or "fedmodel simulate" in done.stdout


def test_user_errors_share_one_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_command(["sweep-report", str(tmp_path / "nope")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("fedmodel sweep-report: error: ") and "does not exist" in err
    assert run_command(["report", str(tmp_path / "nope")]) == 2


def test_an_unrecognized_argument_is_refused_by_its_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: "fedmodel: error: unrecognized arguments: cast on leg", under
    # the top-level usage, for `--text "wheezing" "cast on leg"`.
    with pytest.raises(SystemExit) as done:
        run_command(["predict", "--model", "m", "--text", "wheezing", "cast on leg"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "usage: fedmodel predict" in err
    assert err.splitlines()[-1] == (
        "fedmodel predict: error: unrecognized arguments: cast on leg (quote a "
        "value that holds spaces; --text takes one value each time: --text A "
        "--text B)"
    )


@pytest.mark.parametrize(
    ("argv", "prog", "hint"),
    [
        # Before: "fedmodel ledger: error: ..." under `fedmodel ledger`'s usage,
        # with a hint about predict's --text.
        (
            ["ledger", "show", "--state-dir", "s", "--bogus"],
            "fedmodel ledger show",
            "(quote a value that holds spaces)",
        ),
        (
            ["certs", "superlink", "--dir", "d", "--host", "a", "b"],
            "fedmodel certs superlink",
            "--host takes one value each time: --host A --host B)",
        ),
    ],
)
def test_a_subcommand_refuses_an_argument_in_its_own_words(
    capsys: pytest.CaptureFixture[str], argv: list[str], prog: str, hint: str
) -> None:
    with pytest.raises(SystemExit) as done:
        run_command(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: {prog} " in err
    last = err.splitlines()[-1]
    assert last.startswith(f"{prog}: error: unrecognized arguments: ")
    assert last.endswith(hint)


def test_a_subcommand_reports_a_fedmodel_error_in_its_own_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_command(["ledger", "show", "--state-dir", str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err.startswith("fedmodel ledger show: error: ")


@pytest.mark.parametrize(("held", "code"), [("nothing", 2), ("a reset ledger", 0)])
def test_ledger_show_without_a_history_to_evaluate_imports_no_heavy_module(
    tmp_path: Path, held: str, code: int
) -> None:
    # Only a ledger's history needs Opacus (its accountant, with torch): a
    # folder with no ledger, or a reset one, answers in under a second.
    if held == "a reset ledger":
        (tmp_path / "privacy_ledger.reset-20261206T000000.000000Z.json").write_text("")
    result, done = probed("ledger", "show", "--state-dir", str(tmp_path))
    assert result == {"code": code, "heavy": []}, done.stderr


@pytest.mark.parametrize(
    ("argv", "attribute"),
    [
        (["predict", "--model=~/run/model", "--text", "hi"], "model"),
        (["predict", "--model", "m", "--input=~/texts.csv"], "input"),
        (["ledger", "show", "--state-dir=~/site"], "state_dir"),
        (["audit", "~/run"], "run_dir"),
    ],
)
def test_a_path_option_written_with_equals_expands_the_home_folder(
    argv: list[str], attribute: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A shell leaves `~` in `--input=~/x` as written; the option expands it.
    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(argv)
    value = getattr(args, attribute)
    assert str(value).startswith(str(tmp_path))
    assert "~" not in str(value)
