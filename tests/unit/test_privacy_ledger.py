import errno
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from opacus.accountants import RDPAccountant

import fedmodel.privacy.durable_file as durable_file
from fedmodel.cli.main import run_command
from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.privacy.calibration import epsilon_for
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_cap import BudgetExhausted
from fedmodel.privacy.ledger_record import LedgerRefusal
from fedmodel.privacy.ledger_reset import archive_ledger, archived_ledgers, reset_count

PLAN = PrivacyPlan(
    target_epsilon=5.0,
    delta=1e-4,
    sample_rate=0.1,
    steps_per_round=10,
    planned_rounds=3,
    noise_multiplier=1.0,
    accountant="rdp",
)
ENTRY = (PLAN.noise_multiplier, PLAN.sample_rate, PLAN.steps_per_round)


def open_ledger(path: Path, plan: PrivacyPlan = PLAN, **kwargs: str) -> PrivacyLedger:
    args = {"client_id": "site-a", "data_fingerprint": "sha256:abc"} | kwargs
    return PrivacyLedger.open(path, plan=plan, **args)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "privacy_ledger.json"


def test_new_ledger_is_empty_and_not_written(path: Path) -> None:
    ledger = open_ledger(path)
    assert ledger.epsilon == 0.0
    assert ledger.steps == 0
    assert not path.exists()


def test_charge_persists_and_accumulates(path: Path) -> None:
    first = open_ledger(path)
    eps1 = first.charge(round_number=1, steps=10)
    assert eps1 > 0.0

    reopened = open_ledger(path)
    assert reopened.epsilon == eps1
    assert reopened.history == [ENTRY]

    eps2 = reopened.charge(round_number=2, steps=10)
    assert eps2 > eps1
    fresh = RDPAccountant()
    fresh.history = [ENTRY, ENTRY]
    assert eps2 == pytest.approx(fresh.get_epsilon(delta=PLAN.delta), rel=1e-12)
    assert open_ledger(path).epsilon == eps2
    assert [r.epsilon for r in open_ledger(path).rounds] == [eps1, eps2]


def test_charge_after_crash_before_send_is_on_disk(path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os
        from fedmodel.privacy.client_plan import PrivacyPlan
        from fedmodel.privacy.ledger import PrivacyLedger
        plan = PrivacyPlan(**{PLAN.__dict__!r})
        ledger = PrivacyLedger.open(
            {str(path)!r}, client_id="site-a", plan=plan, data_fingerprint="sha256:abc"
        )
        ledger.charge(round_number=1, steps=10)
        os._exit(1)  # crash before the update is sent
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False)
    assert result.returncode == 1
    expected = epsilon_for([ENTRY], delta=PLAN.delta, accountant="rdp")
    assert open_ledger(path).epsilon == expected


def test_failed_write_leaves_previous_ledger(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = open_ledger(path)
    eps1 = ledger.charge(round_number=1, steps=10)
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(durable_file.os, "replace", broken_replace)
    with pytest.raises(FedmodelError, match="not charged and its update must not be"):
        ledger.charge(round_number=2, steps=10)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.suffix == ".tmp") == []
    assert ledger.epsilon == eps1
    assert open_ledger(path).epsilon == eps1


def test_unsynced_folder_after_the_rename_says_the_charge_is_written(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync_failing_on_folders(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(durable_file.os, "fsync", fsync_failing_on_folders)
    ledger = open_ledger(path)
    with pytest.raises(FedmodelError) as info:
        ledger.charge(round_number=1, steps=10)
    monkeypatch.undo()

    message = str(info.value)
    assert f"privacy ledger {path} is written, with any charge of this round" in message
    assert "Input/output error" in message and "power cut may undo it" in message
    assert "update is not sent" in message and "not charged" not in message
    assert open_ledger(path).history == [ENTRY]  # over-counts, as a crash would
    # The open ledger shows what its file holds, not the spend before the charge.
    assert ledger.history == [ENTRY]
    assert ledger.epsilon == open_ledger(path).epsilon > 0


def test_budget_refusal_writes_nothing(path: Path) -> None:
    tight = replace(PLAN, target_epsilon=0.5)
    ledger = open_ledger(path, tight)
    assert ledger.would_exceed(10)
    with pytest.raises(BudgetExhausted, match="above its cap 0.5"):
        ledger.charge(round_number=1, steps=10)
    assert not path.exists()

    small = open_ledger(path, replace(PLAN, target_epsilon=2.0))
    small.charge(round_number=1, steps=1)
    before = path.read_bytes()
    assert small.would_exceed(1000)
    with pytest.raises(BudgetExhausted):
        small.charge(round_number=2, steps=1000)
    assert path.read_bytes() == before
    assert isinstance(BudgetExhausted("x"), FedmodelError)


def test_mark_exhausted_persists(path: Path) -> None:
    ledger = open_ledger(path)
    ledger.charge(round_number=1, steps=10)
    ledger.mark_exhausted()
    reopened = open_ledger(path)
    assert reopened.budget_exhausted
    assert reopened.steps == 10
    assert json.loads(path.read_text())["budget_exhausted"] is True


def test_same_round_twice_adds(path: Path) -> None:
    ledger = open_ledger(path)
    eps1 = ledger.charge(round_number=1, steps=10)
    eps2 = ledger.charge(round_number=1, steps=10)
    assert eps2 > eps1
    assert ledger.steps == 20


@pytest.mark.parametrize("steps", [0, -10, True])
def test_bad_steps_are_refused(path: Path, steps: int) -> None:
    ledger = open_ledger(path)
    with pytest.raises(ValueError, match="steps"):
        ledger.charge(round_number=1, steps=steps)
    assert not path.exists()


def test_reopen_with_new_plan_keeps_noise_and_history(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = open_ledger(path)
    eps1 = ledger.charge(round_number=1, steps=10)
    new_plan = replace(PLAN, noise_multiplier=3.0, target_epsilon=8.0)
    with caplog.at_level(logging.WARNING):
        reopened = open_ledger(path, new_plan)
    assert "target epsilon changes from 5.0 to 8.0" in caplog.text
    assert reopened.noise_multiplier == PLAN.noise_multiplier
    assert reopened.history == [ENTRY]
    assert reopened.epsilon == eps1
    assert reopened.target_epsilon == 8.0


def test_reopen_with_new_sample_rate_charges_at_new_rate(path: Path) -> None:
    open_ledger(path).charge(round_number=1, steps=10)
    reopened = open_ledger(path, replace(PLAN, sample_rate=0.2, target_epsilon=20.0))
    reopened.charge(round_number=2, steps=10)
    assert reopened.history == [ENTRY, (1.0, 0.2, 10)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"delta": 1e-5}, "target_delta"),
        ({"accountant": "prv"}, "privacy.accountant=rdp"),
    ],
)
def test_reopen_with_other_delta_or_accountant_is_refused(
    path: Path, change: dict[str, object], message: str
) -> None:
    open_ledger(path).charge(round_number=1, steps=10)
    with pytest.raises(FedmodelError, match=message) as info:
        open_ledger(path, replace(PLAN, **change))  # type: ignore[arg-type]
    assert str(path) in str(info.value)
    # The way out it names archives the ledger (a reset the server can see).
    advice = f"fedmodel ledger reset --state-dir {path.parent} --yes"
    assert advice in str(info.value)
    # A simulated client's folder in a run is one that command refuses: as
    # its client answers, the way out is a new run.
    assert isinstance(info.value, LedgerRefusal)
    in_a_run = str(info.value.in_a_run())
    assert "ledger reset" not in in_a_run
    assert in_a_run.endswith(
        "or start a new run in a folder of its own for new budgets (forgetting "
        "the epsilon already spent)"
    )
    archive_ledger(path.parent)
    assert open_ledger(path, replace(PLAN, **change)).epsilon == 0.0  # type: ignore[arg-type]


def test_ledger_of_another_client_is_refused(path: Path) -> None:
    open_ledger(path).charge(round_number=1, steps=10)
    with pytest.raises(FedmodelError, match="belongs to client 'site-a'") as info:
        open_ledger(path, client_id="site-b")
    # At a deployed site the client is the site: it names the site's options.
    assert "its own --state-dir; a site whose --site-id was site-a" in str(info.value)


def test_new_data_keeps_accumulating(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    eps1 = open_ledger(path).charge(round_number=1, steps=10)
    with caplog.at_level(logging.WARNING):
        reopened = open_ledger(path, data_fingerprint="sha256:other")
    assert "different training data" in caplog.text
    # Stated as `fedmodel ledger show` states it, rounded up: a site's log
    # said "its spent epsilon 9.09722805432738 still counts" where `ledger
    # show` said 9.0973.
    assert f"its spent epsilon {decimals_up(eps1, 4)} still counts" in caplog.text
    assert reopened.epsilon == eps1
    assert reopened.data_fingerprint == "sha256:other"


def _tamper_steps(text: str) -> str:
    raw = json.loads(text)
    raw["history"][0][2] = -10
    raw["rounds"][0]["steps"] = -10
    return json.dumps(raw)


def _drop_round(text: str) -> str:
    raw = json.loads(text)
    raw["rounds"] = []
    return json.dumps(raw)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda text: "{not json",
        lambda text: text[: len(text) // 2],
        lambda text: "[]",
        lambda text: text.replace('"delta"', '"dlt"'),
        _tamper_steps,
        _drop_round,
    ],
)
def test_corrupt_ledger_is_an_error_naming_the_file(
    path: Path, corrupt: Callable[[str], str]
) -> None:
    open_ledger(path).charge(round_number=1, steps=10)
    damaged = corrupt(path.read_text())
    path.write_text(damaged)
    with pytest.raises(FedmodelError, match="will not start over") as info:
        open_ledger(path)
    assert str(path) in str(info.value)
    assert path.read_text() == damaged


def test_a_site_archives_an_unusable_ledger_with_ledger_reset(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The refusal names the site's way out: an archive the server counts as a
    # reset. Before, it said "delete it yourself", which the server then
    # refused as a ledger that went back.
    open_ledger(path).charge(round_number=1, steps=10)
    path.write_text("{not json")
    with pytest.raises(FedmodelError) as info:
        open_ledger(path)
    advice = f"fedmodel ledger reset --state-dir {path.parent} --yes"
    assert advice in str(info.value) and "delete" not in str(info.value)
    argv = ["ledger", "reset", "--state-dir", str(path.parent), "--yes"]
    assert run_command(argv) == 0
    printed = capsys.readouterr().out
    assert "(unusable: what it spent is unknown)" in printed
    (archived,) = archived_ledgers(path.parent)
    assert archived.read_text() == "{not json" and not path.exists()
    assert reset_count(path.parent) == 1
    assert open_ledger(path).epsilon == 0.0


def test_two_writers_do_not_lose_charges(path: Path) -> None:
    first = open_ledger(path)
    second = open_ledger(path)
    first.charge(round_number=1, steps=10)
    eps = second.charge(round_number=1, steps=10)
    assert eps == epsilon_for([ENTRY, ENTRY], delta=PLAN.delta, accountant="rdp")
    assert open_ledger(path).steps == 20


def test_lock_that_cannot_be_opened_is_the_ledgers_own_error(path: Path) -> None:
    # A folder where the lock file should be: opening it fails even for root,
    # as a read-only state folder does for anyone else.
    ledger = open_ledger(path)
    ledger.charge(round_number=1, steps=10)
    before = path.read_bytes()
    lock = path.with_name(path.name + ".lock")
    lock.unlink()
    lock.mkdir()
    with pytest.raises(FedmodelError) as info:
        ledger.charge(round_number=2, steps=10)
    message = str(info.value)
    assert str(path) in message and "privacy_ledger.json.lock" in message
    assert "not charged" in message and f"{path.parent} writable" in message
    assert path.read_bytes() == before


def test_state_folder_under_a_file_is_the_ledgers_own_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(FedmodelError, match=r"cannot lock privacy ledger .*state"):
        open_ledger(blocker / "privacy_ledger.json").charge(round_number=1, steps=10)
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root opens files in a read-only folder anyway",
)
def test_read_only_state_folder_is_the_ledgers_own_error(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.parent.chmod(0o555)
    try:
        with pytest.raises(FedmodelError, match=r"cannot lock privacy ledger"):
            open_ledger(path).charge(round_number=1, steps=10)
    finally:
        path.parent.chmod(0o755)


def test_a_reset_loads_opacus_before_it_takes_the_ledgers_lock(path: Path) -> None:
    # `ledger reset --yes` imported Opacus holding the lock, which a round
    # charging the ledger waits on: 4 to 8 s on a busy machine.
    open_ledger(path).charge(round_number=1, steps=10)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import fedmodel.privacy.ledger_reset as reset
        taken = reset.exclusive_lock
        def watched(path):
            print("opacus" in sys.modules)
            return taken(path)
        reset.exclusive_lock = watched
        reset.archive_ledger(Path({str(path.parent)!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout == "True\n"
    assert archived_ledgers(path.parent)
