"""One client's round without Flower: budget, write-ahead ledger, modes, caching."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

import fedmodel.client.jobs as jobs
import fedmodel.client.local_round as local_round
import fedmodel.client.private_round as private_round
import fedmodel.privacy.client_plan as client_plan
import fedmodel.privacy.ledger as privacy_ledger
import fedmodel.training.embedding_cache as embedding_cache
from fedmodel.client.local_round import RoundOutcome, run_local_round
from fedmodel.client.private_round import PrivateRound
from fedmodel.config import RunSettings, settings_from_dict
from fedmodel.data.clients import load_client_data
from fedmodel.model.finetune import held_fixed, prepare_for_finetuning
from fedmodel.model.head import load_trainable_state, trainable_state
from fedmodel.model.load import build_classifier
from fedmodel.model.student import build_student, prepare_student_for_distillation
from fedmodel.privacy.client_plan import plan_privacy
from fedmodel.privacy.ledger_record import LEDGER_FILE, LedgerRecord, read_record
from fedmodel.privacy.sampling import poisson_steps_per_epoch, sample_rate_for
from fedmodel.training.fingerprint import data_fingerprint
from fedmodel.training.loops import build_optimizer
from tests.conftest import small_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Full backward hook is firing",
    "ignore:.*is_gradient_checkpointing.*:FutureWarning",
)

CLIENT = 0
# 100 records a client, all trained on; short texts: a DP round takes ~1 s.
FAST = ("num_clients=6", "task.max_length=16")
Weights = dict[str, torch.Tensor]

# Calibration is a pure function of its arguments and takes seconds of RDP
# arithmetic; every round of every test here plans with the same few.
_plan_once = functools.cache(plan_privacy)


@pytest.fixture(autouse=True)
def _calibrate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_plan, "plan_privacy", _plan_once)


class TrainingCrashed(RuntimeError):
    """Stands in for a crash (OOM, kill) in the middle of local training."""


def make_settings(tmp_path: Path, *overrides: str) -> RunSettings:
    config = small_config(*FAST, *overrides)
    return settings_from_dict({**config, "run_dir": str(tmp_path)})


def fresh_weights(settings: RunSettings) -> Weights:
    """The trainable weights every party starts from (what the server sends)."""
    _, _, label_names = load_client_data(settings, CLIENT)
    model = build_classifier(
        settings.model, label_names=label_names, seed=settings.seed
    )
    return trainable_state(prepare_for_finetuning(model, settings.finetune))


def one_round(
    settings: RunSettings, state_dir: Path, weights: Weights, round_number: int
) -> RoundOutcome:
    return run_local_round(
        settings,
        client_id=CLIENT,
        state_dir=state_dir,
        global_weights=weights,
        round_number=round_number,
    )


def num_train_records(settings: RunSettings) -> int:
    train, _, _ = load_client_data(settings, CLIENT)
    return len(train)


def steps_per_round(settings: RunSettings) -> int:
    n = num_train_records(settings)
    return settings.finetune.local_epochs * poisson_steps_per_epoch(
        n, settings.finetune.batch_size
    )


def read_ledger(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / LEDGER_FILE).read_text(encoding="utf-8"))


def assert_all_changed(before: Weights, after: Weights) -> None:
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"weights left unchanged by a training round: {unchanged}"


def assert_only_weights_and_numbers(outcome: RoundOutcome, expected: Weights) -> None:
    """Nothing but the trainable float weights and plain numbers may leave."""
    fields = {f.name for f in dataclasses.fields(outcome)}
    assert fields == {
        "weights",
        "num_examples",
        "train_loss",
        "budget_exhausted",
        "privacy",
        "compute_seconds",
        "prepare_seconds",
        "withhold_statistics",
    }
    assert isinstance(outcome.withhold_statistics, bool)
    assert outcome.weights is not None
    assert set(outcome.weights) == set(expected)
    for name, value in outcome.weights.items():
        assert isinstance(value, torch.Tensor)
        # Token ids or labels would be integer tensors; weights are floats.
        assert value.dtype.is_floating_point, name
        assert value.shape == expected[name].shape, name
        assert torch.isfinite(value).all(), name
    assert type(outcome.num_examples) is int
    assert type(outcome.train_loss) is float and math.isfinite(outcome.train_loss)
    assert type(outcome.budget_exhausted) is bool
    for key, number in outcome.privacy.items():
        assert isinstance(key, str) and type(number) is float, (key, number)
    for key, number in outcome.released_metrics().items():
        assert isinstance(key, str) and type(number) is float, (key, number)


# --- budget ---------------------------------------------------------------


def test_rounds_past_the_planned_budget_are_refused_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)  # DP on, num_rounds=2, head mode
    assert settings.privacy.enabled and settings.num_rounds == 2
    target = settings.privacy.target_epsilon
    assert target is not None
    state_dir = tmp_path / "client-0"
    start = fresh_weights(settings)
    per_round = steps_per_round(settings)

    weights = start
    for round_number in (1, 2):
        outcome = one_round(settings, state_dir, weights, round_number)
        assert not outcome.budget_exhausted
        assert outcome.weights is not None
        ledger = read_ledger(state_dir)
        charged = [(c["round"], c["steps"]) for c in ledger["rounds"]]
        assert charged == [(r, per_round) for r in range(1, round_number + 1)]
        assert outcome.privacy["epsilon"] == ledger["rounds"][-1]["epsilon"]
        assert outcome.privacy["steps"] == per_round * round_number
        weights = outcome.weights

    before = read_ledger(state_dir)
    spent = before["rounds"][-1]["epsilon"]
    # Noise was calibrated for exactly num_rounds rounds: all but spent, not over.
    assert target - 0.05 <= spent <= target
    assert before["budget_exhausted"] is False

    def must_not_train(*args: object, **kwargs: object) -> float:
        raise AssertionError("a round over budget must not train")

    monkeypatch.setattr(local_round, "train_epochs", must_not_train)
    refused = one_round(settings, state_dir, weights, 3)
    assert refused.budget_exhausted is True
    assert refused.weights is None
    assert refused.num_examples == 0
    assert refused.privacy["epsilon"] == spent <= target

    after = read_ledger(state_dir)
    assert after["budget_exhausted"] is True
    assert {**after, "budget_exhausted": False} == before

    # A new run over the same state dir and the same records starts no new budget.
    rerun = make_settings(tmp_path)
    assert rerun is not settings
    again = one_round(rerun, state_dir, start, 1)
    assert again.budget_exhausted is True
    assert again.weights is None
    final = read_ledger(state_dir)
    assert final["history"] == before["history"]
    assert final["rounds"] == before["rounds"]


def test_round_is_charged_on_disk_before_training_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    state_dir = tmp_path / "client-0"
    seen_at_training_start: list[dict[str, Any]] = []

    def crash_mid_training(*args: object, **kwargs: object) -> float:
        seen_at_training_start.append(read_ledger(state_dir))
        raise TrainingCrashed("killed while training")

    monkeypatch.setattr(local_round, "train_epochs", crash_mid_training)
    with pytest.raises(TrainingCrashed):
        one_round(settings, state_dir, fresh_weights(settings), 1)

    per_round = steps_per_round(settings)
    assert len(seen_at_training_start) == 1
    for ledger in (seen_at_training_start[0], read_ledger(state_dir)):
        assert [(c["round"], c["steps"]) for c in ledger["rounds"]] == [(1, per_round)]
        assert ledger["rounds"][0]["epsilon"] > 0.0
        assert [entry[2] for entry in ledger["history"]] == [per_round]
    assert not any(state_dir.glob(f".{LEDGER_FILE}.*.tmp"))


def test_a_site_with_a_ledger_trains_at_its_noise_without_a_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A deployed site runs each round in a fresh process; the ledger keeps its
    # noise multiplier, so only the first round searches for one.
    monkeypatch.setattr(client_plan, "plan_privacy", _plan_once.__wrapped__)
    settings = make_settings(tmp_path)
    state_dir = tmp_path / "client-0"
    first = one_round(settings, state_dir, fresh_weights(settings), 1)
    assert first.weights is not None
    sigma = read_ledger(state_dir)["noise_multiplier"]

    def no_search(**kwargs: object) -> float:
        raise AssertionError("the ledger's noise multiplier needs no search")

    monkeypatch.setattr(client_plan, "calibrate_noise", no_search)
    second = one_round(settings, state_dir, first.weights, 2)
    assert second.weights is not None
    assert second.privacy["noise-multiplier"] == sigma
    ledger = read_ledger(state_dir)
    assert [entry[0] for entry in ledger["history"]] == [sigma, sigma]
    assert [c["round"] for c in ledger["rounds"]] == [1, 2]
    target = settings.privacy.target_epsilon
    assert target is not None and ledger["rounds"][-1]["epsilon"] <= target


# --- modes ------------------------------------------------------------------


def test_privacy_off_trains_without_a_ledger(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "privacy=off")
    assert not settings.privacy.enabled
    state_dir = tmp_path / "client-0"
    start = fresh_weights(settings)

    outcome = one_round(settings, state_dir, start, 1)

    assert not outcome.budget_exhausted
    assert outcome.privacy == {}
    assert outcome.num_examples == num_train_records(settings)
    assert outcome.weights is not None
    # The off row holds the head's bias too; the weights train.
    assert settings.finetune.train_head_bias is False
    weight = "classifier.weight"
    assert_all_changed({weight: start[weight]}, outcome.weights)
    assert torch.equal(outcome.weights["classifier.bias"], start["classifier.bias"])
    assert_only_weights_and_numbers(outcome, start)
    assert not list(tmp_path.rglob("*ledger*"))


@pytest.mark.parametrize(
    "overrides",
    [
        ("finetune=lora", "finetune.local_epochs=2"),
        ("finetune=full", "finetune.local_epochs=2"),
        # Embeddings under Opacus need per-row position_ids, not BERT's [1, L]
        # buffer; one epoch keeps the per-sample word-embedding grads cheap.
        ("finetune=full", "finetune.train_embeddings=true", "finetune.local_epochs=1"),
    ],
    ids=["lora", "full", "full-embeddings"],
)
def test_dp_round_on_the_encoder_returns_exactly_the_trainable_weights(
    tmp_path: Path, overrides: tuple[str, ...]
) -> None:
    settings = make_settings(tmp_path, *overrides)
    assert settings.privacy.enabled
    state_dir = tmp_path / "client-0"
    start = fresh_weights(settings)
    if settings.finetune.train_embeddings:
        assert "bert.embeddings.word_embeddings.weight" in start
        assert "bert.embeddings.position_embeddings.weight" in start

    outcome = one_round(settings, state_dir, start, 1)

    assert outcome.weights is not None
    assert list(outcome.weights) == list(start)
    assert_only_weights_and_numbers(outcome, start)
    assert_all_changed(start, outcome.weights)
    n = num_train_records(settings)
    expected_steps = settings.finetune.local_epochs * poisson_steps_per_epoch(
        n, settings.finetune.batch_size
    )
    ledger = read_ledger(state_dir)
    assert [entry[2] for entry in ledger["history"]] == [expected_steps]
    assert outcome.privacy["steps"] == expected_steps
    assert outcome.privacy["sample-rate"] == sample_rate_for(
        n, settings.finetune.batch_size
    )
    assert outcome.num_examples == n
    assert not any(state_dir.glob("features-*.pt"))


def test_head_round_releases_only_weights_and_numbers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.finetune.mode == "head" and settings.privacy.enabled
    # Under DP-SGD the budget rule holds the head's bias at its global value.
    assert settings.finetune.train_head_bias is False
    start = fresh_weights(settings)
    assert set(start) == {"classifier.weight", "classifier.bias"}

    outcome = one_round(settings, tmp_path / "client-0", start, 1)

    assert outcome.weights is not None
    weight = "classifier.weight"
    assert_all_changed({weight: start[weight]}, outcome.weights)
    assert torch.equal(outcome.weights["classifier.bias"], start["classifier.bias"])
    assert_only_weights_and_numbers(outcome, start)
    assert set(outcome.privacy) == {
        "epsilon",
        "delta",
        "noise-multiplier",
        "sample-rate",
        "steps",
        "round-steps",
    }
    assert outcome.privacy["round-steps"] > 0  # what this round charged
    # The caller's tensors are not trained in place.
    assert_all_changed({weight: outcome.weights[weight]}, fresh_weights(settings))
    assert all(torch.equal(start[k], v) for k, v in fresh_weights(settings).items())


def test_train_head_bias_set_by_the_user_trains_the_bias(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, "finetune.train_head_bias=true", "finetune.local_epochs=1"
    )
    start = fresh_weights(settings)
    outcome = one_round(settings, tmp_path / "client-0", start, 1)
    assert outcome.weights is not None
    assert_all_changed(start, outcome.weights)


def test_dp_noise_is_not_reproducible_from_the_shared_seed(tmp_path: Path) -> None:
    # The server knows the run config and its seed: if the sampling and noise
    # followed that seed, it could rebuild and subtract the noise.
    settings = make_settings(tmp_path, "finetune.local_epochs=1")
    start = fresh_weights(settings)
    first = one_round(settings, tmp_path / "run-a", start, 1)
    second = one_round(settings, tmp_path / "run-b", start, 1)
    assert first.weights is not None and second.weights is not None
    weight = "classifier.weight"  # the bias is held under DP-SGD
    assert not torch.equal(first.weights[weight], second.weights[weight])


def labels_of_trained_batches(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Record the labels of every batch local training takes, in every epoch."""
    seen: list[torch.Tensor] = []
    real_train_epochs = local_round.train_epochs

    class Watched:
        def __init__(self, loader: Any) -> None:
            self.loader = loader

        def __iter__(self) -> Iterator[Any]:
            for batch in self.loader:
                seen.append(batch["labels"] if isinstance(batch, Mapping) else batch[1])
                yield batch

    def watching(module: Any, loader: Any, *args: Any, **kwargs: Any) -> float:
        return real_train_epochs(module, Watched(loader), *args, **kwargs)

    monkeypatch.setattr(local_round, "train_epochs", watching)
    return seen


def sampler_seed_with_empty_batches(num_records: int, sample_rate: float) -> int:
    """A seed whose Poisson batches start with an empty one and hold another."""
    for seed in range(10_000):
        sizes = [
            len(batch)
            for batch in UniformWithReplacementSampler(
                num_samples=num_records,
                sample_rate=sample_rate,
                generator=torch.Generator().manual_seed(seed),
            )
        ]
        if sizes[0] == 0 and sizes.count(0) > 1:
            return seed
    raise AssertionError("no such seed")


def test_text_round_survives_empty_poisson_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two records per expected batch: Poisson sampling draws empty batches, and
    # here the very first one is empty too. BERT cannot run a zero-row batch.
    settings = make_settings(
        tmp_path,
        "num_clients=12",
        "finetune=lora",
        "finetune.batch_size=2",
        "finetune.local_epochs=1",
    )
    n = num_train_records(settings)
    seed = sampler_seed_with_empty_batches(n, sample_rate_for(n, 2))
    real_private_training = private_round.private_training

    def first_batch_empty(**kwargs: Any) -> Any:
        wrapped = real_private_training(**kwargs)
        wrapped.loader.batch_sampler.generator = torch.Generator().manual_seed(seed)
        return wrapped

    monkeypatch.setattr(private_round, "private_training", first_batch_empty)
    seen = labels_of_trained_batches(monkeypatch)
    start = fresh_weights(settings)
    outcome = one_round(settings, tmp_path / "client-0", start, 1)

    empty_batches = [i for i, labels in enumerate(seen) if labels.numel() == 0]
    assert empty_batches[:1] == [0] and len(empty_batches) > 1
    assert outcome.weights is not None
    assert_only_weights_and_numbers(outcome, start)
    assert outcome.privacy["steps"] == poisson_steps_per_epoch(n, 2)


def test_a_site_smaller_than_one_batch_takes_all_its_records_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 training records against an expected batch of 512: the site samples
    # at rate 1 and is charged for it, with no amplification by subsampling.
    settings = make_settings(tmp_path, "finetune.batch_size=512")
    n = num_train_records(settings)
    assert n < settings.finetune.batch_size
    seen = labels_of_trained_batches(monkeypatch)
    start = fresh_weights(settings)
    outcome = one_round(settings, tmp_path / "client-0", start, 1)

    epochs = settings.finetune.local_epochs
    assert [len(labels) for labels in seen] == [n] * epochs
    assert outcome.privacy["sample-rate"] == 1.0
    assert outcome.privacy["steps"] == epochs
    plan = client_plan.plan_client(settings, num_records=n, client_id="0")
    assert (plan.sample_rate, plan.steps_per_round) == (1.0, epochs)
    assert outcome.privacy["noise-multiplier"] == plan.noise_multiplier
    assert read_ledger(tmp_path / "client-0")["sample_rate"] == 1.0
    assert_only_weights_and_numbers(outcome, start)


# --- head-mode feature cache ------------------------------------------------


def test_head_mode_embeds_once_and_reuses_the_cached_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path, "finetune.local_epochs=1", "finetune.train_head_bias=true"
    )
    state_dir = tmp_path / "client-0"
    train, _, _ = load_client_data(settings, CLIENT)

    first = one_round(settings, state_dir, fresh_weights(settings), 1)
    assert first.weights is not None
    cached = list(state_dir.glob("features-*.pt"))
    assert len(cached) == 1
    stored = torch.load(cached[0])
    assert stored["features"].shape == (len(train), settings.model.hidden_size)
    assert sorted(stored["labels"].tolist()) == sorted(train["label"])
    assert not any(state_dir.glob("*.tmp"))
    # Only the site's own state dir holds them.
    assert {p.parent for p in tmp_path.rglob("features-*.pt")} == {state_dir}

    def must_not_embed(*args: object, **kwargs: object) -> None:
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr("fedmodel.training.embedding_cache.embed_split", must_not_embed)
    second = one_round(settings, state_dir, first.weights, 2)
    assert second.weights is not None
    assert_all_changed(first.weights, second.weights)
    assert list(state_dir.glob("features-*.pt")) == cached


def test_a_round_on_stored_features_trains_as_the_built_classifier_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a simulated client rebuilt the whole classifier (the encoder,
    # from disk) every round only to read its stored features. Dropout on:
    # the head alone must train as the built model does.
    settings = make_settings(tmp_path, "privacy=off", "model.dropout=0.1")
    state_dir = tmp_path / "client-0"
    first = one_round(settings, state_dir, fresh_weights(settings), 1)
    assert first.weights is not None

    train, _, label_names = load_client_data(settings, CLIENT)
    built = jobs.finetune_job(
        settings,
        split=train,
        label_names=label_names,
        global_weights=first.weights,
        state_dir=state_dir,
        client_id=CLIENT,
        round_number=2,
    )
    with held_fixed(built.held):
        optimizer = build_optimizer(built.module.parameters(), built.optimizer)
        local_round.seed_dropout(settings, client_id=CLIENT, round_number=2)
        built_loss = local_round._train(
            settings, built, optimizer=optimizer, private=None
        )

    monkeypatch.setattr("fedmodel.model.load.build_classifier", must_not_build)
    second = one_round(settings, state_dir, first.weights, 2)
    assert second.weights is not None
    assert second.train_loss == built_loss
    assert second.num_examples == len(train)
    expected = trainable_state(built.exchanged)
    assert set(second.weights) == set(expected)
    assert all(torch.equal(second.weights[k], expected[k]) for k in expected)


def must_not_build(*args: object, **kwargs: object) -> None:
    raise AssertionError("a round on stored features must not build the encoder")


def test_feature_cache_is_keyed_by_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another client's records in the same directory must not hit the cache.
    settings = make_settings(tmp_path, "finetune.local_epochs=1")
    state_dir = tmp_path / "shared"
    one_round(settings, state_dir, fresh_weights(settings), 1)
    other, _, _ = load_client_data(settings, 1)
    mine, _, _ = load_client_data(settings, CLIENT)
    assert data_fingerprint(other) != data_fingerprint(mine)

    calls: list[int] = []
    real_embed = jobs.cached_features.__globals__["embed_split"]

    def counting_embed(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(kwargs["split"]))
        return real_embed(*args, **kwargs)

    monkeypatch.setattr("fedmodel.training.embedding_cache.embed_split", counting_embed)
    outcome = run_local_round(
        make_settings(tmp_path, "finetune.local_epochs=1", "privacy=off"),
        client_id=1,
        state_dir=state_dir,
        global_weights=fresh_weights(settings),
        round_number=1,
    )
    assert outcome.weights is not None
    assert calls == [len(other)]
    assert len(list(state_dir.glob("features-*.pt"))) == 2


def test_a_feature_cache_miss_fingerprints_the_records_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cached_features hashed the records twice on a miss: to look the stored
    # features up, then again to name the file it wrote them to.
    settings = make_settings(tmp_path, "finetune.local_epochs=1")
    train, _, label_names = load_client_data(settings, CLIENT)
    model = build_classifier(
        settings.model, label_names=label_names, seed=settings.seed
    )
    hashed: list[int] = []

    def counted_fingerprint(split: Any) -> str:
        hashed.append(len(split))
        return data_fingerprint(split)

    monkeypatch.setattr(embedding_cache, "data_fingerprint", counted_fingerprint)
    state_dir = tmp_path / "client-0"
    state_dir.mkdir()  # a round makes it first
    embedding_cache.cached_features(
        settings, model=model, split=train, state_dir=state_dir
    )
    assert hashed == [len(train)]
    assert len(list(state_dir.glob("features-*.pt"))) == 1


def test_a_round_reads_its_ledger_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PrivateRound.open read the file for its records check, and
    # PrivacyLedger.open read it again for the budget's: two reads a round,
    # which a file replaced in between would answer differently.
    settings = make_settings(tmp_path)
    train, _, _ = load_client_data(settings, CLIENT)
    state_dir = tmp_path / "client-0"
    state_dir.mkdir()
    first = PrivateRound.open(
        settings, client_id=CLIENT, state_dir=state_dir, split=train
    )
    assert first.charge(1)
    reads: list[Path] = []

    def counted(path: Path) -> LedgerRecord:
        reads.append(path)
        return read_record(path)

    monkeypatch.setattr(private_round, "read_record", counted)
    monkeypatch.setattr(privacy_ledger, "read_record", counted)
    again = PrivateRound.open(
        settings, client_id=CLIENT, state_dir=state_dir, split=train
    )
    assert reads == [state_dir / LEDGER_FILE]
    assert again.ledger.steps == first.planned_steps  # the charge it holds
    assert again.ledger.epsilon == first.epsilon


def test_dp_replies_release_no_unnoised_statistics() -> None:
    private = RoundOutcome(
        weights={},
        num_examples=120,
        train_loss=0.7,
        compute_seconds=3.0,
        privacy={
            "epsilon": 1.2,
            "delta": 1e-4,
            "noise-multiplier": 1.1,
            "sample-rate": 0.1,
            "steps": 20.0,
        },
    )
    released = private.released_metrics()
    assert "train-loss" not in released and "compute-seconds" not in released
    assert released["num-examples"] == 120 and released["epsilon"] == 1.2
    public = RoundOutcome(weights={}, num_examples=120, train_loss=0.7)
    assert public.released_metrics()["train-loss"] == 0.7


# --- federated distillation -------------------------------------------------


def _student_weights(settings: RunSettings, teacher: Weights) -> Weights:
    _, _, label_names = load_client_data(settings, CLIENT)
    model = build_classifier(
        settings.model, label_names=label_names, seed=settings.seed
    )
    load_trainable_state(prepare_for_finetuning(model, settings.finetune), teacher)
    student = build_student(model, settings.distill.student)
    return trainable_state(prepare_student_for_distillation(student))


def distill_round(
    settings: RunSettings, state_dir: Path, teacher: Weights, round_number: int
) -> RoundOutcome:
    return run_local_round(
        settings,
        client_id=CLIENT,
        state_dir=state_dir,
        global_weights=_student_weights(settings, teacher),
        round_number=round_number,
        teacher_weights=teacher,
    )


def test_federated_distillation_rounds_are_planned_and_charged(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, "num_rounds=1", "distill=federated", "distill.rounds=1"
    )
    state_dir = tmp_path / "client-0"
    teacher = one_round(settings, state_dir, fresh_weights(settings), 1).weights
    assert teacher is not None
    student_start = _student_weights(settings, teacher)
    outcome = distill_round(settings, state_dir, teacher, 2)

    assert not outcome.budget_exhausted
    assert_only_weights_and_numbers(outcome, student_start)
    assert_all_changed(student_start, outcome.weights or {})
    ledger = read_ledger(state_dir)
    per_round = steps_per_round(settings)
    assert [(c["round"], c["steps"]) for c in ledger["rounds"]] == [
        (1, per_round),
        (2, per_round),
    ]
    # The noise was calibrated for the teacher's round and the student's.
    target = settings.privacy.target_epsilon
    assert target is not None
    assert target - 0.05 <= ledger["rounds"][-1]["epsilon"] <= target
    assert outcome.privacy["epsilon"] == ledger["rounds"][-1]["epsilon"]


def test_distillation_round_past_the_budget_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Planned for the teacher's round only (distill=server): a student round
    # on client records would exceed the budget, so it must not run.
    settings = make_settings(tmp_path, "num_rounds=1")
    state_dir = tmp_path / "client-0"
    teacher = one_round(settings, state_dir, fresh_weights(settings), 1).weights
    assert teacher is not None
    before = read_ledger(state_dir)

    def must_not_train(*args: object, **kwargs: object) -> float:
        raise AssertionError("a round over budget must not train")

    monkeypatch.setattr(local_round, "train_epochs", must_not_train)
    refused = distill_round(settings, state_dir, teacher, 2)
    assert refused.budget_exhausted and refused.weights is None
    assert read_ledger(state_dir)["history"] == before["history"]
