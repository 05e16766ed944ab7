"""Distillation settings that would fail after the teacher's rounds stop before round 1.

The teacher's rounds charge every client's ledger; a transfer file that cannot
be read or a student the teacher cannot give must be refused before them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from transformers import BertConfig, BertModel

from fedmodel.config import RunSettings, settings_from_dict
from fedmodel.distill import precision
from fedmodel.errors import FedmodelError
from fedmodel.federation.preflight import check_before_round_one
from fedmodel.model.load import load_tokenizer
from tests.conftest import group_settings, small_config


def _settings(tmp_path: Path, *overrides: str) -> RunSettings:
    """The small run (model=tiny: 2 layers, 512 positions) in a fresh folder."""
    raw = small_config(*overrides)
    return settings_from_dict({**raw, "run_dir": str(tmp_path / "run")})


def _refused(settings: RunSettings, fragment: str) -> str:
    with pytest.raises(FedmodelError, match=re.escape(fragment)) as refused:
        check_before_round_one(settings)
    assert not Path(settings.run_dir).exists()  # nothing written, nobody charged
    return str(refused.value)


def test_a_transfer_file_that_cannot_be_read_stops_the_run(tmp_path: Path) -> None:
    missing = tmp_path / "public.txt"
    _refused(
        _settings(tmp_path, f"distill.transfer_file={missing}"),
        f"distill.transfer_file: file {missing} does not exist",
    )
    empty = tmp_path / "public.csv"
    empty.write_text("text\n")
    _refused(
        _settings(tmp_path, f"distill.transfer_file={empty}"),
        f"distill.transfer_file: file {empty}",
    )
    no_column = tmp_path / "other.csv"
    no_column.write_text("query\nI lost my card\n")
    _refused(
        _settings(tmp_path, f"distill.transfer_file={no_column}"),
        "has no text column 'text'",
    )
    # A table in the task's own format: its texts are in task.text_column.
    sites_format = tmp_path / "server.csv"
    sites_format.write_text("query,label\nI lost my card,card\n")
    texts = check_before_round_one(
        _settings(
            tmp_path, f"distill.transfer_file={sites_format}", "task.text_column=query"
        )
    )
    assert texts == ["I lost my card"]
    good = tmp_path / "good.txt"
    good.write_text("I lost my card\n")
    # Read once, here; the server's warnings take these texts.
    texts = check_before_round_one(_settings(tmp_path, f"distill.transfer_file={good}"))
    assert texts == ["I lost my card"]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["distill.student.num_layers=2", "distill.student.layers=[0,2]"], "0..1"),
        (["distill.student.num_layers=2", "distill.student.layers=[1,1]"], "distinct"),
    ],
)
def test_student_layers_the_teacher_lacks_stop_the_run(
    tmp_path: Path, overrides: list[str], fragment: str
) -> None:
    message = _refused(_settings(tmp_path, *overrides), "distill.student.layers")
    assert fragment in message and "the teacher has 2 layers" in message


def test_more_student_layers_than_the_teacher_has_stop_the_run(
    tmp_path: Path,
) -> None:
    message = _refused(
        _settings(tmp_path, "distill.student.num_layers=3"),
        "distill.student.num_layers=3",
    )
    assert "the teacher has 2 layers" in message


def test_the_teacher_checkpoints_layer_count_is_the_one_checked(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "bert"
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer = group_settings("model", name="custom", path="tiny-random")
    load_tokenizer(tokenizer).save_pretrained(folder)
    checkpoint = ("model=minilm", f"model.path={folder}", "task.max_length=32")
    check_before_round_one(
        _settings(tmp_path, *checkpoint, "distill.student.layers=[2]")
    )
    message = _refused(
        _settings(tmp_path, *checkpoint, "distill.student.num_layers=4"),
        "distill.student.num_layers=4",
    )
    assert "the teacher has 3 layers" in message
    _refused(
        _settings(tmp_path, *checkpoint, "distill.student.max_length=65"),
        "distill.student.max_length=65 is longer than",
    )


def test_a_student_longer_than_the_positions_stops_the_run(tmp_path: Path) -> None:
    message = _refused(
        _settings(tmp_path, "distill.student.max_length=600"),
        "distill.student.max_length=600 is longer than the tiny random model",
    )
    assert "max_position_embeddings 512" in message
    check_before_round_one(_settings(tmp_path, "distill.student.max_length=512"))


def test_without_a_student_the_student_keys_are_not_checked(tmp_path: Path) -> None:
    check_before_round_one(
        _settings(tmp_path, "distill=off", "distill.student.num_layers=5")
    )


def test_bf16_distillation_where_the_device_has_no_bfloat16_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "has_bfloat16", lambda device: False)
    message = _refused(
        _settings(tmp_path, "distill.precision=bf16"),
        "distill.precision=bf16 but the cpu device this run distils on has no "
        "bfloat16 arithmetic",
    )
    assert "set distill.precision=fp32" in message
    assert check_before_round_one(_settings(tmp_path, "distill.precision=fp32")) is None
