"""The model card states the run's guarantee as summary.json does, no site's data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fedmodel.federation.server_setup import _remove_stale_temp_files
from fedmodel.serve.model_card import model_card, write_model_cards
from tests.conftest import small_settings

RECORD = {
    "level": "record",
    "target_epsilon": 3.0,
    "epsilon": 2.99871,
    "delta": 1e-5,
    "accountant": "prv",
}
OFF = {"level": None, "target_epsilon": None, "epsilon": None, "delta": None}


def _folder(path: Path, labels: int = 3) -> Path:
    path.mkdir(parents=True)
    id2label = {str(i): f"label {i}" for i in range(labels)}
    (path / "config.json").write_text(json.dumps({"id2label": id2label}))
    return path


def card_summary(tmp_path: Path, guarantee: dict[str, Any]) -> dict[str, Any]:
    """A finished run's summary, its models exported in `tmp_path`."""
    return {
        "rounds_completed": 10,
        "rounds": [{"round": r, "model": "teacher"} for r in range(1, 11)],
        "privacy_guarantee": guarantee,
        "clients": [{"client_id": 0, "num_train_examples": 4321, "epsilon": 2.9}],
        "teacher": {
            "accuracy": 0.9012,
            "macro_f1": 0.8876,
            "dir": str(_folder(tmp_path / "model")),
        },
        "student": {
            "accuracy": 0.8777,
            "macro_f1": 0.8654,
            "dir": str(_folder(tmp_path / "student")),
        },
    }


def test_a_dp_run_states_its_largest_epsilon_and_names_no_sites_records(
    tmp_path: Path,
) -> None:
    summary = card_summary(tmp_path, RECORD)
    written = write_model_cards(summary, small_settings("privacy.target_epsilon=3"))
    assert written == [tmp_path / name / "README.md" for name in ("model", "student")]
    teacher, student = (path.read_text() for path in written)
    assert teacher.startswith("---\nlibrary_name: transformers\n")
    assert "one of 3 labels" in teacher and "over 10 rounds" in teacher
    assert (
        "**Differential privacy for any one record of a client (DP-SGD on each "
        "client, Opacus):** epsilon at most 3, delta at most 0.00001, by the PRV "
        "accountant "
        "(target epsilon 3)" in teacher
    )
    # A deployed site reports its ledger, earlier runs included: on the loopback
    # walk 6.55 after a 3-round run (before, "charged over the whole run").
    assert (
        "The epsilon is the largest any client was charged, every round it "
        "trained in counted, used or not (each client keeps its own budget; a "
        "deployed site's ledger also counts its earlier runs on the same records)"
        in teacher
    )
    assert "| teacher (this one) | 0.9012 | 0.8876 |" in teacher
    assert "student" not in teacher.split("## Test results")[1]
    assert "| teacher | 0.9012 | 0.8876 |" in student
    assert "| student (this one) | 0.8777 | 0.8654 |" in student
    assert "never on a client's record: it keeps the teacher's guarantee" in student
    # Before, the student's card opened "Trained by federated learning: ...
    # clients each trained it on its own records", as the teacher's does,
    # then said the student never touched a client's record.
    assert "config.json). Trained by federated learning: " in teacher
    assert "config.json). Its teacher was trained by federated learning: " in student
    assert "Trained by" not in student
    for card in (teacher, student):
        assert "4321" not in card and str(tmp_path) not in card


@pytest.mark.parametrize(
    ("epsilon", "delta", "said"),
    [
        (
            7.994546763855584,
            5.020080321285141e-05,
            "epsilon at most 8, delta at most 0.0001",
        ),
        (0.99941, 1e-5, "epsilon at most 1, delta at most 0.00001"),
        (8.0, 0.0005, "epsilon at most 8, delta at most 0.001"),
        (0.4512, 0.0011, "epsilon at most 0.46, delta at most 0.01"),
        (12.31, 1e-3, "epsilon at most 13, delta at most 0.001"),
    ],
)
def test_the_stated_figures_are_rounded_up_never_down(
    tmp_path: Path, epsilon: float, delta: float, said: str
) -> None:
    summary = card_summary(tmp_path, {**RECORD, "epsilon": epsilon, "delta": delta})
    card = model_card(
        summary, small_settings(), role="teacher", folder=tmp_path / "model"
    )
    assert f"{said}, by the PRV accountant" in card


def test_the_card_does_not_tell_the_smallest_clients_record_count(
    tmp_path: Path,
) -> None:
    # A client's default delta is 1/(10 n): the largest delta over the clients
    # is 1/(10 n) of the smallest, so the card rounds it to a power of ten and
    # the cards of a run whose smallest client held 11, 68 or 99 records match.
    cards = set()
    for records in (11, 68, 99):
        folder = tmp_path / str(records)
        delta = 1 / (10 * records)
        summary = card_summary(folder, {**RECORD, "delta": delta})
        card = model_card(
            summary, small_settings(), role="teacher", folder=folder / "model"
        )
        cards.add(card.replace(str(folder), ""))
    assert len(cards) == 1
    assert "delta at most 0.01," in cards.pop()


def test_a_non_private_run_says_it_has_no_guarantee(tmp_path: Path) -> None:
    summary = card_summary(tmp_path, OFF)
    settings = small_settings("privacy=off")
    card = model_card(summary, settings, role="teacher", folder=tmp_path / "model")
    assert "**No differential privacy** (`privacy=off`)" in card
    assert "epsilon" not in card
    # A DP run whose clients reported no charge is not called non-private.
    unreported = {**RECORD, "epsilon": None, "delta": None}
    card = model_card(
        card_summary(tmp_path / "dp", unreported),
        settings,
        role="teacher",
        folder=tmp_path / "dp" / "model",
    )
    assert "No differential privacy" not in card
    assert "at a cost no client reported to the server" in card


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (("privacy=central",), "any one client's whole contribution"),
        (
            ("distill=federated",),
            "then in 2 federated rounds by the clients on their own records under "
            "the same DP-SGD, charged to the clients' budgets and counted above.",
        ),
        (
            ("distill=federated", "privacy=off"),
            "then in 2 federated rounds by the clients on their own records.\n",
        ),
        (("privacy=off",), "never on a client's record.\n"),
    ],
)
def test_central_dp_and_federated_distillation_are_said(
    tmp_path: Path, overrides: tuple[str, ...], said: str
) -> None:
    summary = card_summary(tmp_path, {**RECORD, "level": "client", "delta": 0.025})
    settings = small_settings(*overrides)
    if settings.distill.client_rounds:
        summary["rounds"] += _student_rounds(aggregated=[2, 2])
    card = model_card(summary, settings, role="student", folder=tmp_path / "student")
    assert said in card
    # Client level: delta is 1/(10 N) of the clients the card counts anyway,
    # so it keeps two digits instead of going up to 0.1.
    assert "epsilon at most 3, delta at most 0.025, by the PRV" in card
    assert "coarsely" not in card


def _student_rounds(aggregated: list[int]) -> list[dict[str, Any]]:
    return [
        {"round": 11 + i, "model": "student", "clients_aggregated": n}
        for i, n in enumerate(aggregated)
    ]


@pytest.mark.parametrize(
    ("aggregated", "said"),
    [
        ([2, 0], "then in 1 federated round by the clients"),
        ([0, 0], "never on a client's record"),
    ],
)
def test_the_student_card_counts_the_student_rounds_that_ran(
    tmp_path: Path, aggregated: list[int], said: str
) -> None:
    # The card gave the configured distill.client_rounds, also where fewer
    # changed the student (budgets spent, every update rejected).
    summary = card_summary(tmp_path, RECORD)
    summary["rounds"] += _student_rounds(aggregated)
    settings = small_settings("distill=federated")
    card = model_card(summary, settings, role="student", folder=tmp_path / "student")
    assert said in card


@pytest.mark.parametrize(
    ("task_name", "transfer_file", "source"),
    [
        ("bank", None, "(the task's transfer split)"),
        ("files", None, "(`task.validation_file`)"),
        ("files", "/data/server_texts.csv", "(`distill.transfer_file`)"),
    ],
)
def test_the_student_card_names_the_texts_it_was_distilled_on(
    tmp_path: Path, task_name: str, transfer_file: str | None, source: str
) -> None:
    settings = small_settings()
    settings = replace(
        settings,
        task=replace(settings.task, name=task_name),
        distill=replace(settings.distill, transfer_file=transfer_file),
    )
    summary = card_summary(tmp_path, RECORD)
    card = model_card(summary, settings, role="student", folder=tmp_path / "student")
    assert f"on texts the server holds {source}" in card
    assert "server_texts.csv" not in card  # the key, never the server's path


@pytest.mark.parametrize(
    ("selected", "kept_start"), [(0, True), (10, False), (None, False)]
)
def test_the_card_says_when_the_server_kept_the_start(
    tmp_path: Path, selected: int | None, kept_start: bool
) -> None:
    # keep_best exports the start when no round beat it: the card read as if
    # the clients' ten rounds had made the model, which holds none of them.
    summary = {**card_summary(tmp_path, RECORD), "selected_round": selected}
    for role, folder in (("teacher", "model"), ("student", "student")):
        card = model_card(
            summary, small_settings(), role=role, folder=tmp_path / folder
        )
        assert "over 10 rounds" in card
        said = "so the server kept the start (`selected_round` 0 in summary.json)"
        assert (said in card) is kept_start
        assert ("the teacher holds no client's update" in card) is kept_start


def test_the_student_card_gives_the_int8_graphs_figures(tmp_path: Path) -> None:
    # predict serves a student's int8 graph by default; its card gave only
    # the float weights' accuracy, which the served model does not reach.
    summary = card_summary(tmp_path, RECORD)
    summary["student"]["quantized"] = {"accuracy": 0.8612, "macro_f1": 0.8501}
    card = model_card(
        summary, small_settings(), role="student", folder=tmp_path / "student"
    )
    assert "| student (this one) | 0.8777 | 0.8654 |" in card
    assert (
        "| student, int8 graph `model.int8.onnx` (what `fedmodel predict` serves "
        "by default) | 0.8612 | 0.8501 |"
    ) in card
    teacher = model_card(
        summary, small_settings(), role="teacher", folder=tmp_path / "model"
    )
    assert "int8" not in teacher.split("## Test results")[1].split("## Use")[0]


def test_a_card_cut_short_by_a_stop_is_never_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stop as the card is written: its epsilon could be cut to a smaller
    # figure ("at most 2" of "at most 2.5"). The card is whole or absent.
    summary = card_summary(tmp_path, {**RECORD, "epsilon": 2.41})

    def cut_short(path: Path, text: str, **kwargs: Any) -> int:
        with path.open("w") as handle:
            handle.write(text[: text.index("epsilon at most 2") + 17])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(KeyboardInterrupt):
        write_model_cards(summary, small_settings("privacy.target_epsilon=3"))
    assert not (tmp_path / "model" / "README.md").exists()
    # Nor is the cut one left beside it, to travel with the exported folder.
    assert not (tmp_path / "model" / "README.md.tmp").exists()
    monkeypatch.undo()
    write_model_cards(summary, small_settings("privacy.target_epsilon=3"))
    assert "epsilon at most 2.5" in (tmp_path / "model" / "README.md").read_text()
    assert not (tmp_path / "model" / "README.md.tmp").exists()


def test_a_card_a_kill_cut_short_is_removed_when_the_run_starts_again(
    tmp_path: Path,
) -> None:
    # A killed process cannot remove its temp file; the next start does.
    for name in ("model", "student"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "README.md.tmp").write_text("epsilon at most 2")
    (tmp_path / "model" / "README.md").write_text("a whole card")
    _remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("README*")) == ["README.md"]


def _table_cells(card: str, heading: str) -> list[list[str]]:
    """Each body row of the table under `heading`, as a GFM renderer reads it."""
    from markdown_it import MarkdownIt

    section = card.split(f"{heading}\n", 1)[1].split("\n#", 1)[0]
    tokens = MarkdownIt("commonmark").enable("table").parse(section)
    rows: list[list[str]] = []
    inside = False
    for token in tokens:
        inside = {"tbody_open": True, "tbody_close": False}.get(token.type, inside)
        if inside and token.type == "tr_open":
            rows.append([])
        elif inside and token.type == "inline":
            # A code span's text as its content: what a reader sees.
            rows[-1].append("".join(c.content for c in token.children or []))
    return rows


def test_labels_with_pipes_backticks_and_line_breaks_keep_the_tables_whole(
    tmp_path: Path,
) -> None:
    # A backtick ended the label's code span early (`a`b` showed `a` and b`);
    # every cell of the card goes through one escaping helper.
    labels = ["a|b", "two\nlines", "back`tick", "`", "``x``", "plain"]
    folder = tmp_path / "model"
    folder.mkdir()
    descriptions = {name: f"x | {i}\nnext" for i, name in enumerate(labels)}
    config = {
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label_descriptions": descriptions,
    }
    (folder / "config.json").write_text(json.dumps(config))
    summary = card_summary(tmp_path / "runs", RECORD)
    card = model_card(summary, small_settings(), role="teacher", folder=folder)
    assert _table_cells(card, "## Labels") == [
        [" ".join(name.split()), f"x | {i} next"] for i, name in enumerate(labels)
    ]
    assert _table_cells(card, "## Test results") == [
        ["teacher (this one)", "0.9012", "0.8876"]
    ]
