"""The GPU path's tensor placement, checked on the CPU (`tests/simulated_gpu.py`).

A whole run (the server's start, DP rounds, distillation, export) goes through
the real ServerApp and ClientApp over the fake Grid while `SimulatedGpu`
keeps it to a GPU's rules: every tensor that meets the model must have been
moved to the model's device. On a GPU the same slip stops the run with
"Expected all tensors to be on the same device".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.federation.server_app import run_federation
from fedmodel.model.device import on_device
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.run.layout import ONNX_FILE, STUDENT_DIR
from tests.fake_grid import FAKE_GRID_RUN, FakeGrid
from tests.simulated_gpu import DeviceMix, SimulatedGpu

# The server's warm start is on the checked path: 2 epochs of its head's fit
# run every placement its default 30 do (each epoch the same steps), and the
# warm start is still kept (held-out loss 4.42 against the label-name start's
# 4.53).
RUN = [
    *FAKE_GRID_RUN,
    "distill.epochs=1",
    "distill.student.num_layers=1",
    "distill.augment_copies=0",
    "warm_start.epochs=2",
]


@pytest.mark.parametrize(
    "overrides",
    [
        ["finetune=head"],
        ["finetune=lora"],
        ["finetune=lora", "distill=federated"],
        ["finetune=full", "privacy=central"],
    ],
    ids=["head", "lora", "lora-federated-distillation", "full-central-dp"],
)
def test_a_run_keeps_every_tensor_beside_its_model(
    tmp_path: Path, overrides: list[str]
) -> None:
    raw = compose_config([*RUN, *overrides])
    settings = settings_from_dict({**raw, "run_dir": str(tmp_path)})
    with SimulatedGpu():
        summary = run_federation(FakeGrid(2), settings)
    assert summary["rounds_completed"] == 1
    assert (tmp_path / STUDENT_DIR / ONNX_FILE).is_file()


def test_a_lora_teacher_is_merged_before_clients_cut_the_student(
    tmp_path: Path,
) -> None:
    # A client rebuilt the teacher with LoRA adapters unmerged in it, so
    # cutting the student out of it failed on every machine (KeyError naming
    # bert.encoder.layer.1.attention.self.query.weight).
    raw = compose_config([*RUN, "finetune=lora", "distill=federated"])
    settings = settings_from_dict({**raw, "run_dir": str(tmp_path)})
    summary = run_federation(FakeGrid(2), settings)
    assert summary["rounds_completed"] == 1
    assert summary["failed_clients"] == []


def test_the_check_stops_a_batch_left_on_the_cpu() -> None:
    settings = settings_from_dict(compose_config(RUN))
    with SimulatedGpu() as gpu:
        model = on_device(
            build_classifier(settings.model, label_names=("a", "b", "c"), seed=0),
            "auto",
        )
        batch = load_tokenizer(settings.model)(["a text"], return_tensors="pt")
        with pytest.raises(DeviceMix, match="embedding"):
            model(**batch)
        logits = model(**{k: v.to(gpu.device) for k, v in batch.items()}).logits
        assert gpu.place(logits) == "gpu"
        with pytest.raises(DeviceMix, match="numpy"):
            logits.detach().numpy()
        assert gpu.place(logits.detach().cpu()) == "cpu"
