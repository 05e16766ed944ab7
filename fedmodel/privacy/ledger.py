"""A client's privacy budget, persisted write-ahead so it never resets.

The ledger is charged for a round before that round's update may leave the
client: a crash after the charge over-counts, a crash before it sends nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fedmodel.privacy.calibration import HistoryEntry, epsilon_for
from fedmodel.privacy.client_plan import PrivacyPlan
from fedmodel.privacy.figure_keys import (
    DELTA_KEY,
    EPSILON_KEY,
    NOISE_MULTIPLIER_KEY,
    SAMPLE_RATE_KEY,
    STEPS_KEY,
)
from fedmodel.privacy.ledger_cap import cap_refusal, within_cap
from fedmodel.privacy.ledger_check import checked_epsilon
from fedmodel.privacy.ledger_commit import commit_change
from fedmodel.privacy.ledger_record import LedgerRecord, RoundCharge, read_record
from fedmodel.privacy.ledger_reopen import check_same_budget, note_changes


class PrivacyLedger:
    """A client's accountant state: every charged (noise, rate, steps) entry.

    Build one with `PrivacyLedger.open` (`from_record` where the file is read
    already). All epsilon figures come from `epsilon_for` over the stored history.
    """

    def __init__(
        self, path: Path, record: LedgerRecord, *, epsilon: float | None = None
    ) -> None:
        self._path = path
        self._record = record
        self._epsilon = epsilon

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        client_id: str,
        plan: PrivacyPlan,
        data_fingerprint: str,
    ) -> PrivacyLedger:
        """Load the ledger at `path`, or start one (written on the first charge).

        A stored ledger keeps its history and noise multiplier; the sample rate
        and cap follow `plan`, since they describe how this run samples and
        what the site allows now. A different delta, accountant or client id
        is an error, as is a file that cannot be read or whose history no
        longer spends the epsilon its last charge recorded (`checked_epsilon`).
        """
        path = Path(path)
        stored = read_record(path) if path.exists() else None
        return cls.from_record(
            path,
            stored,
            client_id=client_id,
            plan=plan,
            data_fingerprint=data_fingerprint,
        )

    @classmethod
    def from_record(
        cls,
        path: Path,
        stored: LedgerRecord | None,
        *,
        client_id: str,
        plan: PrivacyPlan,
        data_fingerprint: str,
    ) -> PrivacyLedger:
        """`open`, on the record a caller has already read from `path`.

        `stored` is None where `path` holds no ledger yet. A caller that
        checks the stored record first (`PrivateRound.open`) reads the file
        once, so both checks see the same bytes.
        """
        fresh = LedgerRecord(
            client_id=client_id,
            accountant=plan.accountant,
            delta=plan.delta,
            target_epsilon=plan.target_epsilon,
            noise_multiplier=plan.noise_multiplier,
            sample_rate=plan.sample_rate,
            data_fingerprint=data_fingerprint,
        )
        if stored is None:
            return cls(path, fresh)
        check_same_budget(path, stored=stored, wanted=fresh)
        spent = checked_epsilon(path, stored)
        note_changes(path, stored=stored, wanted=fresh)
        record = replace(
            stored,
            sample_rate=plan.sample_rate,
            target_epsilon=plan.target_epsilon,
            data_fingerprint=data_fingerprint,
        )
        return cls(path, record, epsilon=spent)

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._path

    @property
    def client_id(self) -> str:
        """The client this budget belongs to."""
        return self._record.client_id

    @property
    def accountant(self) -> str:
        """The Opacus accountant ("rdp" or "prv")."""
        return self._record.accountant

    @property
    def delta(self) -> float:
        """The delta every epsilon is stated at."""
        return self._record.delta

    @property
    def target_epsilon(self) -> float:
        """The cap: no charge may take epsilon above it."""
        return self._record.target_epsilon

    @property
    def noise_multiplier(self) -> float:
        """The noise multiplier the next round must train with."""
        return self._record.noise_multiplier

    @property
    def sample_rate(self) -> float:
        """The Poisson sample rate the next round is charged at."""
        return self._record.sample_rate

    @property
    def data_fingerprint(self) -> str:
        """The caller's hash of the training records last seen."""
        return self._record.data_fingerprint

    @property
    def history(self) -> list[HistoryEntry]:
        """One (noise multiplier, sample rate, steps) entry per charged round."""
        return list(self._record.history)

    @property
    def rounds(self) -> list[RoundCharge]:
        """One entry per charged round, with the epsilon after it."""
        return list(self._record.rounds)

    @property
    def steps(self) -> int:
        """Noisy optimizer steps charged so far."""
        return self._record.steps

    @property
    def budget_exhausted(self) -> bool:
        """Whether the last decision was a refusal for lack of budget."""
        return self._record.budget_exhausted

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far, at `delta`."""
        if self._epsilon is None:
            self._epsilon = self._epsilon_of(self._record.history)
        return self._epsilon

    def reported_figures(self, *, epsilon: float | None = None) -> dict[str, float]:
        """The figures a client's reply carries, under `figure_keys`' names.

        `epsilon` is the spend as the caller last had it (a charge's result),
        so it is not evaluated again; None: `self.epsilon`.
        """
        return {
            EPSILON_KEY: self.epsilon if epsilon is None else epsilon,
            DELTA_KEY: self.delta,
            NOISE_MULTIPLIER_KEY: self.noise_multiplier,
            SAMPLE_RATE_KEY: self.sample_rate,
            STEPS_KEY: float(self.steps),
        }

    def epsilon_after(self, steps: int) -> float:
        """Epsilon after charging `steps` more steps at the current settings."""
        return self._epsilon_of(self._record.history + (self._entry(steps),))

    def would_exceed(self, steps: int) -> bool:
        """Whether charging `steps` more steps would pass the cap."""
        return not within_cap(self.epsilon_after(steps), self.target_epsilon)

    def charge(self, *, round_number: int, steps: int) -> float:
        """Record a round's steps on disk, then return the new epsilon.

        Call before the round's update leaves the client, and send nothing if
        this raises. Charges only ever add: repeating a round number adds
        again. `BudgetExhausted` means the cap would be passed; nothing was
        written.
        """
        if isinstance(round_number, bool) or not isinstance(round_number, int):
            raise ValueError(f"round_number must be an integer, got {round_number!r}")
        if round_number < 0:
            raise ValueError(f"round_number must be >= 0, got {round_number}")
        entry = self._entry(steps)

        def add_round(base: LedgerRecord) -> LedgerRecord:
            history = base.history + (entry,)
            after = self._epsilon_of(history)
            if not within_cap(after, base.target_epsilon):
                raise cap_refusal(
                    base,
                    round_number=round_number,
                    steps=steps,
                    before=self._epsilon_of(base.history),
                    after=after,
                )
            charge = RoundCharge(round=round_number, steps=steps, epsilon=after)
            return replace(
                base,
                history=history,
                rounds=base.rounds + (charge,),
                budget_exhausted=False,
            )

        self._commit(add_round)
        return self._record.spent_epsilon

    def mark_exhausted(self) -> None:
        """Persist that this client refused a round for lack of budget."""
        self._commit(lambda base: replace(base, budget_exhausted=True))

    def _entry(self, steps: int) -> HistoryEntry:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        return (self.noise_multiplier, self.sample_rate, steps)

    def _epsilon_of(self, history: tuple[HistoryEntry, ...]) -> float:
        return epsilon_for(history, delta=self.delta, accountant=self.accountant)

    def _commit(self, change: Callable[[LedgerRecord], LedgerRecord]) -> None:
        commit_change(self._path, self._record, change, now_reads=self._hold)

    def _hold(self, record: LedgerRecord) -> None:
        self._record, self._epsilon = record, None
