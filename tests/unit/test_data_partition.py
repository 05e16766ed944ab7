from collections import Counter

import datasets
import pytest

from fedmodel.data.partition import partition_clients
from fedmodel.data.splits import build_split
from fedmodel.errors import FedmodelError
from tests.conftest import group_settings

LABELS = ("a", "b", "c", "d", "e")


def _train(size: int = 1000, *, sites: int | None = None) -> datasets.Dataset:
    split = build_split(
        [f"text {i}" for i in range(size)],
        [i % len(LABELS) for i in range(size)],
        label_names=LABELS,
        sites=None if sites is None else [i % sites for i in range(size)],
    )
    return split.add_column("idx", list(range(size)))


def _ids(parts: list[datasets.Dataset]) -> list[list[int]]:
    return [list(part["idx"]) for part in parts]


def _assert_disjoint_cover(parts: list[datasets.Dataset], size: int) -> None:
    flat = [i for ids in _ids(parts) for i in ids]
    assert sum(len(part) for part in parts) == size
    assert sorted(flat) == list(range(size))


def test_unknown_partition_lists_known() -> None:
    with pytest.raises(FedmodelError, match=r"'nope'.*dirichlet.*iid.*natural"):
        partition_clients(
            _train(),
            partition=group_settings("partition", name="nope"),
            num_clients=2,
            seed=0,
        )


def test_iid_is_shuffled_even_disjoint_and_seeded() -> None:
    settings = group_settings("partition", "iid")
    parts = partition_clients(_train(), partition=settings, num_clients=4, seed=0)
    _assert_disjoint_cover(parts, 1000)
    assert [len(part) for part in parts] == [250] * 4
    assert _ids(parts)[0] != list(range(250))
    again = partition_clients(_train(), partition=settings, num_clients=4, seed=0)
    other = partition_clients(_train(), partition=settings, num_clients=4, seed=1)
    assert _ids(parts) == _ids(again) and _ids(parts) != _ids(other)


def _top_label_share(part: datasets.Dataset) -> float:
    return max(Counter(part["label"]).values()) / len(part)


def test_dirichlet_is_skewed_disjoint_and_seeded() -> None:
    settings = group_settings(
        "partition", "dirichlet", alpha=0.1, min_partition_size=20
    )
    parts = partition_clients(_train(), partition=settings, num_clients=4, seed=0)
    _assert_disjoint_cover(parts, 1000)
    assert min(len(part) for part in parts) >= 20
    # iid clients hold ~20% of each of the 5 labels; alpha=0.1 concentrates them
    assert sum(_top_label_share(part) for part in parts) / 4 > 0.5
    again = partition_clients(_train(), partition=settings, num_clients=4, seed=0)
    other = partition_clients(_train(), partition=settings, num_clients=4, seed=1)
    assert _ids(parts) == _ids(again) and _ids(parts) != _ids(other)


def test_dirichlet_impossible_split_names_alpha() -> None:
    # 100 records over 4 clients with at least 25 each: only an exact split works
    settings = group_settings(
        "partition", "dirichlet", alpha=0.01, min_partition_size=25
    )
    with pytest.raises(FedmodelError, match=r"4 clients.*partition.alpha=0.01"):
        partition_clients(_train(100), partition=settings, num_clients=4, seed=0)
    too_big = group_settings("partition", "dirichlet", min_partition_size=30)
    with pytest.raises(FedmodelError, match="min_partition_size=30"):
        partition_clients(_train(100), partition=too_big, num_clients=4, seed=0)


def test_natural_by_site_column_defaults_for_files() -> None:
    train = _train(30, sites=3)
    for settings in (
        group_settings("partition", "natural", column="site"),
        group_settings("partition", "natural"),
    ):
        parts = partition_clients(train, partition=settings, num_clients=3, seed=0)
        _assert_disjoint_cover(parts, 30)
        assert [set(part["site"]) for part in parts] == [{0}, {1}, {2}]


def test_natural_needs_a_column_without_site() -> None:
    with pytest.raises(FedmodelError, match="partition.column"):
        partition_clients(
            _train(),
            partition=group_settings("partition", "natural"),
            num_clients=2,
            seed=0,
        )
    settings = group_settings("partition", "natural", column="nope")
    with pytest.raises(FedmodelError, match=r"'nope'.*\['text', 'label', 'idx'\]"):
        partition_clients(_train(), partition=settings, num_clients=2, seed=0)


def test_natural_group_count_must_match_clients() -> None:
    train = _train(30).add_column("hospital", [i % 3 for i in range(30)])
    settings = group_settings("partition", "natural", column="hospital")
    with pytest.raises(FedmodelError, match=r"3 distinct groups.*num_clients=3"):
        partition_clients(train, partition=settings, num_clients=4, seed=0)


def test_a_files_task_with_the_wrong_client_count_is_told_the_file_count() -> None:
    # A files task's records carry their file's index in the site column,
    # which is the default column and may also be named.
    for column in (None, "site"):
        settings = group_settings("partition", "natural", column=column)
        with pytest.raises(
            FedmodelError, match=r"task.train_files lists 3 files.*set num_clients=3"
        ):
            partition_clients(
                _train(30, sites=3), partition=settings, num_clients=4, seed=0
            )


def test_natural_label_groups() -> None:
    groups = {"a": "north", "b": "north", "c": "south", "d": "south", "e": "west"}
    settings = group_settings("partition", "natural", label_groups=groups)
    parts = partition_clients(_train(), partition=settings, num_clients=3, seed=0)
    _assert_disjoint_cover(parts, 1000)
    # clients follow the sorted group names
    assert [set(part["group"]) for part in parts] == [{"north"}, {"south"}, {"west"}]
    assert set(parts[0]["label"]) == {0, 1}
    with pytest.raises(FedmodelError, match=r"3 distinct groups.*num_clients=2"):
        partition_clients(_train(), partition=settings, num_clients=2, seed=0)


def test_label_groups_must_name_real_labels_and_cover_all() -> None:
    unknown = group_settings("partition", "natural", label_groups={"zzz": "x"})
    with pytest.raises(FedmodelError, match=r"key \['zzz'\] that is not a label"):
        partition_clients(_train(), partition=unknown, num_clients=1, seed=0)
    partial = group_settings("partition", "natural", label_groups={"a": "x", "b": "y"})
    with pytest.raises(FedmodelError, match=r"no group for labels \['c', 'd', 'e'\]"):
        partition_clients(_train(), partition=partial, num_clients=2, seed=0)
