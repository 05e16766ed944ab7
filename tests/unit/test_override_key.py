"""Which key an override names, and how, read by Hydra's own parser."""

from __future__ import annotations

import pytest

from fedmodel.cli.hydra_files import OverrideKey, override_key, task_overrides


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("num_rounds=3", OverrideKey("num_rounds", "", hydras=False)),
        ("+foo=1", OverrideKey("foo", "+", hydras=False)),
        ("++foo=1", OverrideKey("foo", "++", hydras=False)),
        ("~distill", OverrideKey("distill", "~", hydras=False)),
        ("~num_rounds=3", OverrideKey("num_rounds", "~", hydras=False)),
        ("model@student=tiny", OverrideKey("model@student", "", hydras=False)),
        # A quoted value may hold what reads as a key's end or a prefix.
        ("hydra.run.dir='+a=b,~c'", OverrideKey("hydra.run.dir", "", hydras=True)),
        ("++hydra.job.env_set.X=1", OverrideKey("hydra.job.env_set.X", "++", True)),
        ("hydra/launcher=basic", OverrideKey("hydra/launcher", "", hydras=True)),
        ("hydrant=1", OverrideKey("hydrant", "", hydras=False)),
    ],
)
def test_the_key_is_read_as_hydra_reads_it(override: str, key: OverrideKey) -> None:
    assert override_key(override) == key


def test_an_override_hydra_cannot_parse_has_no_key() -> None:
    assert override_key("num_rounds=[") is None


def test_task_overrides_leave_out_hydras_own_and_keep_what_it_cannot_parse() -> None:
    # Hydra names an override it cannot parse; it is left for Hydra to name.
    overrides = ["seed=1", "~hydra.job.name", "+hydra/launcher=basic", "hydra.x=["]
    assert task_overrides(overrides) == ["seed=1", "hydra.x=["]
