"""Serving an exported ONNX graph with ONNX Runtime (float or int8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedmodel.errors import FedmodelError
from fedmodel.serve.exported_folder import CONFIG_FILE, read_exported_folder
from fedmodel.serve.graph_tokenizer import GraphTokenizer


class OnnxClassifier:
    """The ONNX file, run with ONNX Runtime; tokenizer and labels from its folder.

    Neither torch nor transformers is imported: `GraphTokenizer` reads the
    folder's tokenizer.json with the `tokenizers` library.
    """

    def __init__(self, onnx_path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # No spin-waiting after a call: spinning threads take the CPU from
        # whatever runs next on the machine (the tokenizer, another model,
        # another request). Timed alone, a model is as fast either way.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            # Not `--model {onnx_path}`: a folder's graph is opened for --model
            # DIR, and pointing at another model.onnx was no fix for a damaged one.
            raise FedmodelError(
                f"--model: {onnx_path} is not a loadable ONNX model ({exc}); "
                "copy it again from the folder fedmodel exported, or export the "
                "model again"
            ) from exc
        folder = read_exported_folder(onnx_path.parent)
        self.label_names = folder.label_names
        self.label_descriptions = folder.label_descriptions
        _check_label_count(onnx_path, self.session, len(self.label_names))
        self.tokenizer = GraphTokenizer(folder)
        self.max_length = self.tokenizer.max_length

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [len(texts), num_labels]."""
        (logits,) = self.session.run(["logits"], self.tokenizer(texts))
        return np.asarray(logits)


def _check_label_count(onnx_path: Path, session: Any, labels: int) -> None:
    """Refuse a graph whose logits are not one per label of config.json.

    Too few names failed deep inside `predict`; too many named a label the
    graph never scores.
    """
    outputs = {out.name: out.shape for out in session.get_outputs()}
    width = outputs.get("logits", [None, None])[-1]
    if isinstance(width, int) and width != labels:
        raise FedmodelError(
            f"--model {onnx_path}: the graph scores {width} labels but "
            f"{onnx_path.parent / CONFIG_FILE} names {labels} in id2label; "
            f"restore {CONFIG_FILE} from the same export or export the model again"
        )
