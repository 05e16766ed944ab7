import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmodel.errors import FedmodelError
from fedmodel.privacy.engine import private_training
from fedmodel.privacy.sampling import poisson_steps_per_epoch, sample_rate_for

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def make_loader(num_records: int, batch_size: int) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(num_records, 5, generator=generator)
    labels = torch.randint(0, 3, (num_records,), generator=generator)
    return DataLoader(TensorDataset(features, labels), batch_size=batch_size)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    *,
    epochs: int,
) -> None:
    for _ in range(epochs):
        for features, labels in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(features), labels).backward()
            optimizer.step()


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def test_make_private_trains_and_counts_steps() -> None:
    torch.manual_seed(0)
    loader = make_loader(64, 8)
    model = nn.Linear(5, 3)
    before = flat_params(model)
    wrapped = private_training(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loader=loader,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
    )
    dp_model, optimizer, dp_loader, counter = (
        wrapped.model,
        wrapped.optimizer,
        wrapped.loader,
        wrapped.steps,
    )
    assert counter() == 0
    train(dp_model, optimizer, dp_loader, epochs=2)

    assert counter() == 2 * len(loader) == 2 * len(dp_loader)
    assert counter.history == [(1.0, sample_rate_for(64, 8), 16)]
    assert not torch.equal(flat_params(model), before)
    counter.check_within(noise_multiplier=1.0, sample_rate=1 / 8, steps=16)
    with pytest.raises(FedmodelError, match="charged for 15"):
        counter.check_within(noise_multiplier=1.0, sample_rate=1 / 8, steps=15)
    with pytest.raises(FedmodelError, match="must not be sent"):
        counter.check_within(noise_multiplier=1.5, sample_rate=1 / 8, steps=16)


def test_poisson_loader_length_is_what_calibration_plans() -> None:
    # 372 records in batches of 4: Opacus yields 92 batches, not 93.
    loader = make_loader(372, 4)
    model = nn.Linear(5, 3)
    wrapped = private_training(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loader=loader,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
    )
    dp_loader = wrapped.loader
    assert len(dp_loader) == poisson_steps_per_epoch(372, 4) == 92
    assert sum(1 for _ in dp_loader) == 92


def test_per_example_clipping_bounds_the_update() -> None:
    torch.manual_seed(0)
    num_records, lr, clip = 32, 1.0, 1e-3
    # One batch holding every record: the update is lr * mean of clipped grads.
    loader = make_loader(num_records, num_records)
    model = nn.Linear(5, 3)
    with torch.no_grad():
        model.weight.mul_(100.0)
    before = flat_params(model)
    wrapped = private_training(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        loader=loader,
        noise_multiplier=0.0,
        max_grad_norm=clip,
    )
    dp_model, optimizer, dp_loader, counter = (
        wrapped.model,
        wrapped.optimizer,
        wrapped.loader,
        wrapped.steps,
    )
    train(dp_model, optimizer, dp_loader, epochs=1)
    update = (flat_params(model) - before).norm().item()

    assert counter() == 1
    assert 0.0 < update <= lr * clip * (1 + 1e-5)


def test_incompatible_model_is_a_clear_error() -> None:
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    with pytest.raises(FedmodelError, match="BatchNorm"):
        private_training(
            model=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loader=make_loader(16, 4),
            noise_multiplier=1.0,
            max_grad_norm=1.0,
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dp_sgd_noises_a_model_on_the_gpu() -> None:
    # Opacus draws the noise on the parameters' device with our generator; a
    # CPU generator there made every DP step on a GPU fail.
    model = nn.Linear(5, 3).to("cuda")
    before = flat_params(model)
    wrapped = private_training(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loader=make_loader(64, 8),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
    )
    for features, labels in wrapped.loader:
        wrapped.optimizer.zero_grad()
        logits = wrapped.model(features.to("cuda"))
        nn.functional.cross_entropy(logits, labels.to("cuda")).backward()
        wrapped.optimizer.step()
    assert wrapped.steps() == 8
    assert not torch.equal(flat_params(model), before)
