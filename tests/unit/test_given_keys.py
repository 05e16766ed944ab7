"""simulations/given_keys.sh: a script's own override gives way to the user's."""

from __future__ import annotations

import subprocess
from pathlib import Path

HELPER = Path(__file__).resolve().parents[2] / "simulations" / "given_keys.sh"


def _not_given(*args: str) -> list[str]:
    script = 'source "$0"; set -u; not_given "$@"'
    done = subprocess.run(
        ["bash", "-c", script, str(HELPER), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_a_key_the_user_sets_drops_the_scripts_value_whatever_its_prefix() -> None:
    defaults = ["model=tiny", "num_rounds=1", "+x.y=2", "distill=off", "seed=42,43"]
    user = ["--", "num_rounds=3", "~distill", "++x.y=5", "a=1"]
    assert _not_given(*defaults, *user) == ["model=tiny", "seed=42,43"]


def test_without_user_overrides_every_default_stands() -> None:
    assert _not_given("seed=42,43", "distill=off", "--") == [
        "seed=42,43",
        "distill=off",
    ]
    assert _not_given("--", "a=1") == []


def test_the_scripts_that_set_keys_the_user_may_set_use_it() -> None:
    for name in ("audit_power.sh", "privacy_sweep.sh"):
        text = (HELPER.parent / name).read_text()
        assert "source simulations/given_keys.sh" in text
        assert "not_given " in text
