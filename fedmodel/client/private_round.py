"""A client's DP-SGD round: plan, charge the ledger write-ahead, wrap, check.

Used when the privacy mode has the client train with DP-SGD
(`privacy=dpsgd`). The plan comes from `privacy.client_plan.plan_client`, the
one function `fedmodel privacy-plan` also prints, so the plan shown is the plan
run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from fedmodel.client.site_delta import site_delta_warning
from fedmodel.config import RunSettings
from fedmodel.config.delta_rule import weak_delta_warning
from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.privacy.accountants import stated_by_rdp
from fedmodel.privacy.charged_records import note_charged_records
from fedmodel.privacy.client_plan import plan_client
from fedmodel.privacy.engine import StepCounter, private_training
from fedmodel.privacy.figure_keys import ROUND_STEPS_KEY
from fedmodel.privacy.ledger import PrivacyLedger
from fedmodel.privacy.ledger_cap import BudgetExhausted
from fedmodel.privacy.ledger_record import LEDGER_FILE, LedgerRecord, read_record
from fedmodel.privacy.reset_overlap import digests_to_note, spent_before_reset
from fedmodel.training.feature_store import StoredFeatures
from fedmodel.training.fingerprint import data_fingerprint
from fedmodel.training.loops import LossFn, criterion_loss

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

# How a simulated client's refusal of data changed during the run says why and
# what to do, whether its ledger's records tell it or its task files
# (`task_files_read.py`).
DATA_CHANGED = (
    "the task's data changed during the run, so its records were dealt out again"
)
WAY_OUT = (
    "Restore the data the run began with and resume the run (fedmodel resume "
    "RUN), or start a new run in a folder of its own"
)


@dataclass
class PrivateRound:
    """One client's ledger for this round and the steps it plans to take.

    `planned_steps` is the plan's steps per round, the number charged;
    `step_counter` counts the steps Opacus takes, checked against it.
    """

    settings: RunSettings
    client_id: int
    ledger: PrivacyLedger
    planned_steps: int
    epsilon: float = 0.0
    step_counter: StepCounter | None = None
    # What this round's charge added to the ledger: `planned_steps`, or 0 if
    # refused.
    charged_steps: int = 0
    # A site's records the ledger's digests lack, noted once they are charged.
    uncharged: tuple[bytes, ...] | None = None
    new_ledger: bool = False

    @classmethod
    def open(
        cls,
        settings: RunSettings,
        *,
        client_id: int,
        state_dir: Path,
        split: datasets.Dataset | StoredFeatures,
        at_site: bool = False,
    ) -> PrivateRound:
        """Open the client's one ledger with the plan its records call for.

        Stored head-mode features carry their records' fingerprint, so a site
        training on them goes on with the same ledger. A new ledger is
        announced (`_say_of_new_ledger`). A simulated client (not `at_site`)
        refuses a ledger charged for other records (`_check_same_records`); a
        site's file may change between federations, and its ledger counts on.
        """
        path = state_dir / LEDGER_FILE
        stored = read_record(path) if path.exists() else None
        fingerprint = _fingerprint(split)
        if stored is not None and not at_site:
            _check_same_records(path, stored, client_id=client_id, now=fingerprint)
        # A stored ledger keeps its noise multiplier, so a client that has one
        # needs no calibration search (seconds under PRV, in every round of a
        # deployed site, which runs a fresh process per message).
        plan = plan_client(
            settings,
            num_records=len(split),
            client_id=str(client_id),
            noise_multiplier=None if stored is None else stored.noise_multiplier,
        )
        digests = _site_digests(
            path, split, fingerprint=fingerprint, new=stored is None, at_site=at_site
        )
        if stored is None:  # said once, not in every round after
            _say_of_new_ledger(
                state_dir,
                client_id=client_id,
                delta=plan.delta,
                records=len(split),
                fingerprint=fingerprint,
                digests=digests,
                at_site=at_site,
            )
        ledger = PrivacyLedger.from_record(
            path,
            stored,
            client_id=str(client_id),
            plan=plan,
            data_fingerprint=fingerprint,
        )
        return cls(
            settings=settings,
            client_id=client_id,
            ledger=ledger,
            planned_steps=plan.steps_per_round,
            uncharged=digests,
            new_ledger=stored is None,
        )

    def charge(self, round_number: int) -> bool:
        """Write this round's cost to disk before training; False if over budget.

        A round that would exceed the budget is not charged; the ledger notes
        the refusal (`fedmodel ledger show` reports it). The server stops
        selecting this client on the reply's flag (`RoundOutcome.exhausted`).
        """
        try:
            self.epsilon = self.ledger.charge(
                round_number=round_number, steps=self.planned_steps
            )
        except BudgetExhausted as exc:
            log.warning("%s", exc)  # it names the client and the round
            self.ledger.mark_exhausted()
            self.epsilon = self.ledger.epsilon
            return False
        self.charged_steps = self.planned_steps
        if rdp := stated_by_rdp(self.ledger.accountant, self.ledger.steps):
            epsilon = decimals_up(self.epsilon, 4)  # as `fedmodel ledger show`
            log.info("client %d: epsilon %s%s", self.client_id, epsilon, rdp)
        if self.uncharged is not None:
            note_charged_records(
                self.ledger.path,
                fingerprint=self.ledger.data_fingerprint,
                digests=self.uncharged,
                fresh=self.new_ledger,
            )
        return True

    def wrap(
        self,
        module: nn.Module,
        optimizer: Optimizer,
        loader: DataLoader,
        *,
        loss_fn: LossFn | None,
    ) -> tuple[nn.Module, Optimizer, DataLoader, LossFn | None]:
        """Opacus' DP-SGD around the round's training objects, at the ledger's noise.

        Ghost and onepass clipping need a per-example cross-entropy, so a job
        with its own loss (federated distillation) is clipped by hooks whatever
        the setting. Returns the loss to train with: the job's own, or the
        criterion `private_training` returns for the clipping method.
        """
        privacy = self.settings.privacy
        assert privacy.max_grad_norm is not None  # the config checks require it
        assert privacy.grad_sample_mode is not None  # the budget rule fills it
        mode = privacy.grad_sample_mode if loss_fn is None else "hooks"
        wrapped = private_training(
            model=module,
            optimizer=optimizer,
            loader=loader,
            noise_multiplier=self.ledger.noise_multiplier,
            max_grad_norm=privacy.max_grad_norm,
            grad_sample_mode=mode,
        )
        self.step_counter = wrapped.steps
        if loss_fn is None:
            loss_fn = criterion_loss(wrapped.criterion)
        return wrapped.model, wrapped.optimizer, wrapped.loader, loss_fn

    def check_within_charge(self) -> None:
        """Refuse to release an update whose cost exceeds what the ledger holds."""
        assert self.step_counter is not None, "wrap() runs before training"
        self.step_counter.check_within(
            noise_multiplier=self.ledger.noise_multiplier,
            sample_rate=self.ledger.sample_rate,
            steps=self.planned_steps,
        )

    def figures(self) -> dict[str, float]:
        """The privacy numbers a reply carries (they depend on the plan alone).

        Among them the steps this round charged: 0 for a round over budget,
        whatever an earlier charge with this round's number holds (a previous
        run's, at a site whose ledger outlives runs). The server subtracts
        them from the steps before it compares with what it recorded
        (`ledger_regression`).
        """
        return {
            **self.ledger.reported_figures(epsilon=self.epsilon),
            ROUND_STEPS_KEY: float(self.charged_steps),
        }


def _say_of_new_ledger(
    state_dir: Path,
    *,
    client_id: int,
    delta: float,
    records: int,
    fingerprint: str,
    digests: tuple[bytes, ...] | None,
    at_site: bool,
) -> None:
    """Warn, as a client's ledger is opened new, of what its budget does not show.

    A weak delta (`at_site` names the site's own `--delta`), and earlier
    ledgers of `state_dir`, archived by a reset, that charged any of these
    records (`spent_before_reset`): for those their epsilons add up with the
    new one's.
    """
    weak = (
        site_delta_warning(client_id, delta=delta, records=records)
        if at_site
        else weak_delta_warning(delta, who=f"client {client_id}", n=records)
    )
    again = spent_before_reset(
        state_dir, fingerprint=fingerprint, records=records, digests=digests
    )
    for line in (weak, *again):
        if line is not None:
            log.warning("%s", line)


def _fingerprint(split: datasets.Dataset | StoredFeatures) -> str:
    """The records' `data_fingerprint`: stored features carry theirs."""
    if isinstance(split, StoredFeatures):
        return split.fingerprint
    return data_fingerprint(split)


def _site_digests(
    path: Path,
    split: datasets.Dataset | StoredFeatures,
    *,
    fingerprint: str,
    new: bool,
    at_site: bool,
) -> tuple[bytes, ...] | None:
    """The record digests a site's ledger at `path` lacks (`digests_to_note`).

    None for a simulated client: `fedmodel ledger reset` refuses its folder.
    """
    if not at_site:
        return None
    records = None if isinstance(split, StoredFeatures) else split
    return digests_to_note(path, fingerprint=fingerprint, new=new, split=records)


def _check_same_records(
    path: Path, stored: LedgerRecord, *, client_id: int, now: str
) -> None:
    """Refuse a simulated client's ledger that was charged for other records.

    A simulated client holds the records dealt to it at the run's start for
    the whole run. A task file changed during the run is read, and its
    records dealt, again (`data/clients.py` keys its cache by each file's
    version), so records move between clients and a record could be charged
    under two clients' ledgers that each count only their own: a resume
    refuses that (`record_check.check_same_records`), and so does a round.
    Before, the round went on with a warning in the worker's log.
    """
    if stored.data_fingerprint == now:
        return
    raise FedmodelError(
        f"client {client_id}'s training records are not the ones its privacy "
        f"ledger {path} was charged for (fingerprint {stored.data_fingerprint}, "
        f"now {now}): {DATA_CHANGED} and a record could be charged under two "
        f"clients' ledgers. {WAY_OUT}"
    )
