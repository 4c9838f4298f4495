"""A frozen-encoder text classifier as one transformers model: encoder, mean pooling, the trained head.

`jal train` with ``freeze_encoder: true`` trains only a head on cached sentence embeddings
(`jal_trainer.probe`). What it saves is this model: the encoder's weights, the same pooling
(mean over real tokens, L2-normalised) and the trained head, so a saved run folder predicts from
raw text exactly as the head was trained, through ``AutoModelForSequenceClassification`` and
``pipeline("text-classification", ...)`` (after ``import jal_trainer.models``, which registers it).

Example:
    >>> from transformers import BertConfig
    >>> encoder = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                      intermediate_size=16).to_dict()
    >>> model = SentenceClassifierForSequenceClassification(SentenceClassifierConfig(encoder=encoder, num_labels=3))
    >>> model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape
    torch.Size([1, 3])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class SentenceClassifierConfig(PretrainedConfig):
    """Config: the encoder's config as a dict, and the head's hidden layers (0: one linear layer)."""

    model_type = "jal-sentence-classifier"

    def __init__(self, encoder: dict[str, Any] | None = None, hidden_layers: int = 0, **kwargs: Any) -> None:
        self.encoder = dict(encoder or {})
        self.hidden_layers = hidden_layers
        super().__init__(**kwargs)


class SentenceClassifierForSequenceClassification(PreTrainedModel):
    """Token ids (N, L) -> encoder -> mean pooling, L2 norm -> head -> logits (N, num_labels)."""

    config_class = SentenceClassifierConfig
    base_model_prefix = "encoder"

    def __init__(self, config: SentenceClassifierConfig) -> None:
        super().__init__(config)
        encoder_config = dict(config.encoder)
        self.encoder = AutoModel.from_config(AutoConfig.for_model(encoder_config.pop("model_type", "bert"),
                                                                  **encoder_config))
        hidden = self.encoder.config.hidden_size
        layers: list[nn.Module] = []
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden, config.num_labels))
        self.head = nn.Sequential(*layers)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **kwargs: Any) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state  # (N, L, H)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # as jal_trainer.probe embeds
        logits = self.head(nn.functional.normalize(pooled, dim=-1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def from_probe(probe: Any, encoder: str) -> SentenceClassifierForSequenceClassification:
    """The full model of a trained `jal_trainer.probe.ProbeForClassification` head on ``encoder``.

    Args:
        probe: the trained head (its ``head`` layers and label names are copied).
        encoder: path or Hub id of the frozen encoder the embeddings came from.
    """
    base = AutoModel.from_pretrained(encoder)
    encoder_config = {k: v for k, v in base.config.to_dict().items() if k not in ("_name_or_path", "architectures")}
    config = SentenceClassifierConfig(encoder=encoder_config, hidden_layers=probe.config.hidden_layers,
                                      num_labels=probe.config.num_labels, id2label=probe.config.id2label,
                                      label2id=probe.config.label2id)
    model = SentenceClassifierForSequenceClassification(config)
    model.encoder.load_state_dict(base.state_dict())
    model.head.load_state_dict(probe.head.state_dict())
    return model.eval()


__all__ = ["SentenceClassifierConfig", "SentenceClassifierForSequenceClassification", "from_probe"]
