"""The exported folder in the sentence-transformers layout, beside the HF files.

The folder's root already holds a stock BERT encoder (config, weights,
tokenizer); these files add the rest of the pipeline as modules that need no
custom code: mean or CLS pooling, optional normalisation, and the
classification layer as a dense layer without activation. So
`SentenceTransformer(folder).encode(texts)` returns the classifier's logits,
and a tool that reads the layout's JSON can rebuild the model from stock
parts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from fedmodel.model.classifier import PooledBertForSequenceClassification

MODULES_FILE = "modules.json"
POOLING_DIR = "1_Pooling"
NORMALIZE_DIR = "2_Normalize"
DENSE_DIR = "3_Dense"
SENTENCE_CONFIG_FILE = "sentence_bert_config.json"
MODULE_CONFIG_FILE = "config.json"
DENSE_WEIGHTS_FILE = "model.safetensors"
IDENTITY = "torch.nn.modules.linear.Identity"
ST_MODULES = "sentence_transformers.models"


def write_sentence_layout(
    model: PooledBertForSequenceClassification, out_dir: Path, *, max_length: int
) -> Path:
    """Write modules.json and the pooling / normalize / dense modules into `out_dir`.

    The dense module's output is the logits (`sentence_embedding`).
    """
    config = model.config
    modules: list[dict[str, Any]] = [
        {"path": "", "type": f"{ST_MODULES}.Transformer"},
        {"path": POOLING_DIR, "type": f"{ST_MODULES}.Pooling"},
    ]
    _write_json(
        out_dir / POOLING_DIR / MODULE_CONFIG_FILE,
        {
            "word_embedding_dimension": config.hidden_size,
            "pooling_mode_cls_token": config.pooling == "cls",
            "pooling_mode_mean_tokens": config.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    if config.normalize:
        (out_dir / NORMALIZE_DIR).mkdir(parents=True, exist_ok=True)
        modules.append({"path": NORMALIZE_DIR, "type": f"{ST_MODULES}.Normalize"})
    modules.append({"path": DENSE_DIR, "type": f"{ST_MODULES}.Dense"})
    _write_json(
        out_dir / DENSE_DIR / MODULE_CONFIG_FILE,
        {
            "in_features": config.hidden_size,
            "out_features": model.classifier.out_features,
            "bias": True,
            "activation_function": IDENTITY,
        },
    )
    save_file(
        {
            "linear.weight": model.classifier.weight.detach().contiguous(),
            "linear.bias": model.classifier.bias.detach().contiguous(),
        },
        str(out_dir / DENSE_DIR / DENSE_WEIGHTS_FILE),
    )
    _write_json(
        out_dir / MODULES_FILE,
        [{"idx": i, "name": str(i), **module} for i, module in enumerate(modules)],
    )
    _write_json(
        out_dir / SENTENCE_CONFIG_FILE,
        {"max_seq_length": max_length, "do_lower_case": False},
    )
    return out_dir


def _write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
