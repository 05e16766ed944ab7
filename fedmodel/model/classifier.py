"""A BERT text classifier over pooled token states (mean or CLS), in Hugging Face form.

This file is self-contained (torch and transformers only) on purpose: saving a
model copies it next to the weights, so plain `transformers` loads the result
with `AutoModelForSequenceClassification.from_pretrained(dir,
trust_remote_code=True)` on a machine without fedmodel.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class PooledBertConfig(BertConfig):
    """BERT config plus the pooling the classification head reads.

    Its model type is plain `bert` (the two extra keys ride along), so tools
    that only read the config, such as `AutoTokenizer`, need no custom code.
    """

    model_type = "bert"

    def __init__(
        self, pooling: str = "mean", normalize: bool = False, **kwargs: object
    ) -> None:
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.pooling = pooling
        self.normalize = normalize
        super().__init__(**kwargs)  # type: ignore[arg-type]


def pool_hidden_states(
    hidden: torch.Tensor, attention_mask: torch.Tensor, *, pooling: str
) -> torch.Tensor:
    """Reduce token states [batch, seq, dim] to one vector per text.

    Mean pooling averages the states of real (unmasked) tokens only, the pooling
    sentence encoders such as all-MiniLM-L6-v2 were trained with.
    """
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


class PooledBertForSequenceClassification(BertPreTrainedModel):
    """BERT encoder, pooling, dropout and one linear classification layer."""

    config_class = PooledBertConfig

    def __init__(self, config: PooledBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, int(config.num_labels or 2))
        self.post_init()

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled text vectors, the input of the classification layer."""
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
        ).last_hidden_state
        pooled = pool_hidden_states(hidden, attention_mask, pooling=self.config.pooling)
        if self.config.normalize:
            # Unit-length vectors, as the sentence encoder's own pipeline ends.
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from pooled text vectors."""
        return self.classifier(self.dropout(features))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> SequenceClassifierOutput:
        """Logits (and the cross-entropy loss when labels are given)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits = self.classify(
            self.embed(input_ids, attention_mask, token_type_ids, position_ids)
        )
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
