"""The `device` key, the federation's participation keys and Ray's settings.

Tests run without a GPU: `auto` must pick the CPU here and an explicit
`cuda` must stop with a FedmodelError, not a torch traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from fedmodel.config import settings_from_dict
from fedmodel.errors import FedmodelError
from fedmodel.federation.simulation import ray_backend_config
from fedmodel.model.device import batch_to, model_device, on_device, resolve_device
from fedmodel.model.head import FeatureHead, trainable_state
from fedmodel.training.loops import evaluate, feature_logits
from tests.conftest import small_config

NO_GPU = not torch.cuda.is_available()


def test_auto_picks_cuda_only_when_present() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_an_explicit_gpu_without_one_is_a_clear_error(name: str) -> None:
    with pytest.raises(FedmodelError, match=f"device={name}.*device=auto"):
        resolve_device(name)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("device=gpu", "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("device=cuda:x", "got 'cuda:x'"),
        (
            "federation.min_replies=0",
            "'federation.min_replies' must be a finite number >= 1, got 0",
        ),
        (
            "federation.round_timeout=0",
            "'federation.round_timeout' must be a finite number > 0, got 0",
        ),
        (
            "federation.gpus_per_client=-1",
            "'federation.gpus_per_client' must be a finite number >= 0, got -1",
        ),
    ],
)
def test_bad_hardware_settings_name_the_key(override: str, message: str) -> None:
    with pytest.raises(FedmodelError, match=re.escape(message)):
        settings_from_dict(small_config(override))


def test_defaults_come_from_the_packaged_yaml() -> None:
    settings = settings_from_dict(small_config())
    assert settings.device == "auto"
    assert settings.federation.min_replies == 1
    assert settings.federation.gpus_per_client == 0
    assert settings.federation.ray_address is None
    deployed = settings_from_dict(small_config("federation=deployment"))
    assert deployed.federation.round_timeout == 600


def test_ray_backend_joins_a_cluster_and_reserves_gpus() -> None:
    local = settings_from_dict(small_config()).federation
    # Not None: ray.init(address=None) joins whatever cluster it can find.
    assert ray_backend_config(local)["init_args"]["address"] == "local"
    cluster = settings_from_dict(
        small_config(
            "federation.ray_address=10.0.0.5:6379",
            "federation.cpus_per_client=1",
            "federation.gpus_per_client=0.5",
        )
    ).federation
    config = ray_backend_config(cluster)
    assert config["init_args"]["address"] == "10.0.0.5:6379"
    assert config["client_resources"] == {"num_cpus": 1.0, "num_gpus": 0.5}


def test_a_model_on_the_device_evaluates_and_exchanges_cpu_weights(
    tmp_path: Path,
) -> None:
    head = on_device(FeatureHead(hidden_size=4, num_labels=3, dropout=0.1), "auto")
    assert model_device(head) == resolve_device("auto")
    features = torch.randn(10, 4)
    labels = torch.randint(0, 3, (10,))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(features, labels), batch_size=4
    )
    result = evaluate(head, loader, logits_fn=feature_logits(head))
    assert result.num_examples == 10
    assert {w.device.type for w in trainable_state(head).values()} == {"cpu"}
    moved = batch_to({"input_ids": torch.ones(2, 3)}, resolve_device("cpu"))
    assert moved["input_ids"].device.type == "cpu"
