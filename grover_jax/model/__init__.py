"""The Flax BERT encoder and its heads (see bert.py for the HF name mapping)."""

from grover_jax.model.bert import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    make_classifier,
    make_model,
)
from grover_jax.model.config import BertConfig

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "make_classifier",
    "make_model",
]
