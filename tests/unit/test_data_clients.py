import dataclasses
from collections.abc import Callable
from pathlib import Path

import datasets
import pytest

from fedmodel.config import RunSettings, compose_config, settings_from_dict
from fedmodel.data.clients import load_client_data, split_client_data
from fedmodel.data.splits import build_split
from fedmodel.errors import FedmodelError
from fedmodel.research.privacy_plan import plan_run


def _partition(size: int) -> datasets.Dataset:
    return build_split(
        [f"t{i}" for i in range(size)], [i % 2 for i in range(size)], label_names="ab"
    )


def test_split_is_disjoint_seeded_and_sized() -> None:
    part = _partition(100)
    train, val = split_client_data(part, client_id=0, val_fraction=0.1, seed=0)
    assert (len(train), len(val)) == (90, 10)
    assert sorted([*train["text"], *val["text"]]) == sorted(part["text"])
    again, _ = split_client_data(part, client_id=0, val_fraction=0.1, seed=0)
    other, _ = split_client_data(part, client_id=1, val_fraction=0.1, seed=0)
    assert train["text"] == again["text"] and train["text"] != other["text"]


def test_split_without_validation() -> None:
    train, val = split_client_data(
        _partition(10), client_id=0, val_fraction=0.0, seed=0
    )
    assert (len(train), len(val)) == (10, 0)


def test_empty_partition_is_an_error() -> None:
    with pytest.raises(FedmodelError, match="client 2 holds no records"):
        split_client_data(_partition(0), client_id=2, val_fraction=0.1, seed=0)


def _settings(tmp_path: Path, *, num_clients: int, privacy: str = "off") -> RunSettings:
    files = []
    for site in range(2):
        path = tmp_path / f"site{site}.csv"
        rows = [f"site {site} text {i},{'yes' if i % 2 else 'no'}" for i in range(20)]
        path.write_text("text,label\n" + "\n".join(rows) + "\n")
        files.append(str(path))
    test = tmp_path / "test.csv"
    test.write_text("text,label\nheld out,yes\nheld back,no\n")
    settings = settings_from_dict(
        compose_config(
            [
                "task=files",
                "task.split_seed=null",
                "model=tiny",
                "finetune=full",
                "finetune.batch_size=4",
                "partition=natural",
                "partition.column=site",
                f"privacy={privacy}",
                "distill=off",
                f"num_clients={num_clients}",
                "num_rounds=1",
                "seed=0",
            ]
        )
    )
    task = dataclasses.replace(settings.task, train_files=files, test_file=str(test))
    return dataclasses.replace(settings, task=task)


def test_load_client_data_gives_each_site_its_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path, num_clients=2)
    train, val, labels = load_client_data(settings, 1)
    assert labels == ("no", "yes")
    # By default a site trains on every record of its file: no run reads a
    # local validation split, so none is held out of training.
    assert settings.task.val_fraction == 0
    assert (len(train), len(val)) == (20, 0)
    assert set(train["site"]) == {1}
    held = dataclasses.replace(
        settings, task=dataclasses.replace(settings.task, val_fraction=0.1)
    )
    train, val, _ = load_client_data(held, 1)
    assert (len(train), len(val)) == (18, 2)
    assert set(train["site"]) == {1} and set(val["site"]) == {1}
    again, _, _ = load_client_data(held, 1)
    assert train["text"] == again["text"]


def test_load_client_data_checks_client_id(tmp_path: Path) -> None:
    settings = _settings(tmp_path, num_clients=2)
    with pytest.raises(
        FedmodelError, match=r"client_id 2 .*num_clients=2 \(ids 0..1\)"
    ):
        load_client_data(settings, 2)


@pytest.mark.parametrize(
    "deal",
    [lambda settings: load_client_data(settings, 1), plan_run],
    ids=["run", "privacy-plan"],
)
def test_cap_that_empties_a_site_file_is_refused(
    tmp_path: Path, deal: Callable[[RunSettings], object]
) -> None:
    # Three site files, the middle one of a single record: the cap keeps 5 of
    # the 41 records at random and none of the middle file's, so client 1
    # would have held the last file's records while named by the middle one.
    # The plan deals the clients by the run's own path, and refuses it too.
    settings = _settings(tmp_path, num_clients=3, privacy="dpsgd")
    lone = tmp_path / "lone.csv"
    lone.write_text("text,label\nthe lone record,yes\n")
    files = [settings.task.train_files[0], str(lone), settings.task.train_files[1]]
    capped = dataclasses.replace(
        settings,
        task=dataclasses.replace(
            settings.task, train_files=files, max_train_examples=5, split_seed=0
        ),
    )
    with pytest.raises(
        FedmodelError,
        match=rf"max_train_examples=5 .* none of task.train_files\[1\] \({lone}\)",
    ):
        deal(capped)
