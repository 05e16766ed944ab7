"""Saving a classifier for deployment: Hugging Face format plus an ONNX graph.

The ONNX file sits in the Hugging Face directory, next to the tokenizer and the
config (which holds id2label), so either can be served from one folder.
"""

from __future__ import annotations

import copy
import logging
import shutil
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from fedmodel.model.classifier import PooledBertForSequenceClassification
from fedmodel.model.device import model_device
from fedmodel.model.finetune import merged_classifier
from fedmodel.model.load import save_pretrained
from fedmodel.run.layout import ONNX_FILE, ONNX_INPUTS, QUANTIZED_ONNX_FILE
from fedmodel.serve.exported_folder import CONFIG_FILE, DESCRIPTIONS_ENTRY
from fedmodel.serve.sentence_layout import write_sentence_layout

QUANTIZED_OPS = ["MatMul"]
ONNX_OPSET = 17
# Beside an export's folder: the new export while it is written, and the
# earlier one while the new one takes its place.
PARTIAL_SUFFIX = ".partial"
REPLACED_SUFFIX = ".replaced"


class _LogitsOnly(nn.Module):
    """The classifier as ONNX sees it: token ids and mask in, logits out."""

    def __init__(self, model: PooledBertForSequenceClassification) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_classifier(
    model: PooledBertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    *,
    max_length: int,
    quantize: bool = False,
) -> Path:
    """Save the model in Hugging Face format and as `model.onnx` in `out_dir`.

    The tokenizer is saved with `model_max_length = max_length`, the length the
    model was trained and evaluated with, so a server truncates as training did.
    The folder is also in the sentence-transformers layout (`sentence_layout`).
    With `quantize`, `model.int8.onnx` (int8 weights) is written beside the
    float graph, which stays.

    The folder is written whole or not at all: the files go to a folder
    beside it, which then takes its place (`_put_in_place`). A stop during
    the export (Ctrl-C, a crash) leaves an earlier export as it was, never
    its ONNX graphs beside the new weights; and no model card (README.md) an
    earlier start of the run wrote outlives its weights, whose rounds and
    epsilon it states. The run writes the card of these weights once it has
    finished.
    """
    partial = out_dir.with_name(out_dir.name + PARTIAL_SUFFIX)
    shutil.rmtree(partial, ignore_errors=True)  # an earlier stop's
    # A copy: the caller's may be `load_tokenizer`'s, which the process shares.
    saved = copy.deepcopy(tokenizer)
    saved.model_max_length = max_length
    _settle_backend(saved, max_length=max_length)
    save_pretrained(model, saved, partial)
    write_sentence_layout(merged_classifier(model), partial, max_length=max_length)
    export_onnx(model, partial / ONNX_FILE)
    if quantize:
        quantize_onnx(partial / ONNX_FILE, partial / QUANTIZED_ONNX_FILE)
    _share_like_config(partial)
    _put_in_place(partial, out_dir)
    return out_dir


def keep_label_descriptions(
    model: PooledBertForSequenceClassification, described: Mapping[str, str] | None
) -> None:
    """Have the model's exports keep each label's description in config.json.

    `fedmodel predict` and the model card show them beside coded labels
    (`3`, `J45`). A student built from this model's config keeps them too;
    None (a task without task.label_descriptions) keeps none.
    """
    if described is not None:
        setattr(model.config, DESCRIPTIONS_ENTRY, dict(described))


def _put_in_place(new: Path, target: Path) -> None:
    """Rename the folder `new` to `target`, whose earlier folder is removed.

    The earlier one is moved aside first and removed last, so a stop between
    the steps leaves whole folders only, the earlier export under its
    `REPLACED_SUFFIX` name until the next export removes it.
    """
    aside = target.with_name(target.name + REPLACED_SUFFIX)
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        target.rename(aside)
    new.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


def _settle_backend(tokenizer: PreTrainedTokenizerBase, *, max_length: int) -> None:
    """Save tokenizer.json truncating at `max_length`, without padding.

    The backend keeps whatever the last call (or the downloaded file) set,
    e.g. MiniLM's fixed padding to 128; whoever serves model.onnx with the
    plain `tokenizers` library gets the state written here.
    """
    if isinstance(tokenizer, PreTrainedTokenizerFast):
        tokenizer.backend_tokenizer.enable_truncation(max_length=max_length)
        tokenizer.backend_tokenizer.no_padding()


def _share_like_config(out_dir: Path) -> None:
    """Give every exported file config.json's permissions (the umask's).

    safetensors writes its files readable by the owner only, so another
    account serving the folder could read everything but the weights.
    """
    mode = stat.S_IMODE((out_dir / CONFIG_FILE).stat().st_mode)
    for path in out_dir.rglob("*"):
        if path.is_file():
            path.chmod(mode)


def quantize_onnx(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of an ONNX graph's weights (ONNX Runtime's).

    The weights of the matrix multiplications are stored as int8, one scale
    per output channel, and activations are quantized on the fly per call, so
    no calibration data is needed. The embedding table stays float: quantizing
    it too (one scale for the whole table) flipped several times more labels
    in our parity check, for a smaller file but no speed.

    The weights use 7 of their 8 bits (`reduce_range`). On x86 CPUs without
    VNNI (AVX2 only, as many servers and laptops are) ONNX Runtime multiplies
    uint8 activations by int8 weights in 16-bit sums that saturate; with full
    8-bit weights the int8 graph of our parity check's student then agreed
    with the float graph on 0.80 of the texts, with 7-bit weights on 0.945,
    at the same speed. A graph is exported once and served anywhere, so it
    is quantized for the CPUs that need this.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(".onnx.tmp")
    # Its quantizer logs each skipped op and unset tensor on the root logger:
    # 14 lines of the run's log, and advice to pre-process that does not apply.
    root = logging.getLogger()
    root.addFilter(_quantizer_errors_only)
    try:
        quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=QUANTIZED_OPS,
        )
    finally:
        root.removeFilter(_quantizer_errors_only)
    tmp.replace(target)
    return target


def _quantizer_errors_only(record: logging.LogRecord) -> bool:
    """Keep a root-logger line unless ONNX Runtime's quantizer logged it below ERROR."""
    return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


def export_onnx(model: PooledBertForSequenceClassification, path: Path) -> Path:
    """Write the classifier as an ONNX graph with dynamic batch and length axes."""
    wrapper = _LogitsOnly(model).eval()
    sample_ids = torch.tensor(
        [[101, 7592, 2088, 102], [101, 7592, 102, 0]], device=model_device(model)
    )
    sample_mask = (sample_ids != 0).long()
    dynamic = {"batch": 0, "length": 1}
    tmp = path.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        # The TorchScript exporter is the one that handles this model quickly
        # and exactly; its deprecation notice is not for our users.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (sample_ids, sample_mask),
            str(tmp),
            input_names=list(ONNX_INPUTS),
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {v: k for k, v in dynamic.items()},
                "attention_mask": {v: k for k, v in dynamic.items()},
                "logits": {0: "batch"},
            },
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    tmp.replace(path)
    return path
