"""BertConfig from values read out of a file (a fine-tuned folder's finetune.json, an HF
config.json): each value is checked against its field's type and range first, so a mistyped one
is named where it was read instead of failing later inside the model (`"32"` for a size would
otherwise reach a modulo as a string)."""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from grover_jax.model.config import BertConfig

_FIELD_TYPES = {field.name: field.type for field in dataclasses.fields(BertConfig)}
_PROBABILITIES = ("hidden_dropout", "attention_dropout")


def _value_problem(field: str, value: Any) -> str | None:
    """Why `value` cannot be BertConfig's `field`; None where it can."""
    kind = _FIELD_TYPES[field]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return None if value >= 1 else "must be >= 1"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "must be a number"
        if field in _PROBABILITIES and not 0 <= value < 1:
            return "must be in [0, 1)"
        return None if value >= 0 else "must be >= 0"
    if kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    return None if isinstance(value, str) else "must be a string"


def bert_config_from_values(values: Mapping[str, Any], key_of: Mapping[str, str] | None = None) -> BertConfig:
    """BertConfig of `values` (field name -> value as read); ValueError names the first unusable
    one by its key in the file (`key_of`: field -> that key, where the file names it otherwise)."""
    key_of = key_of or {}
    unknown = sorted(set(values) - set(_FIELD_TYPES))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}")
    if "vocab_size" not in values:
        raise ValueError(f"missing field {key_of.get('vocab_size', 'vocab_size')!r}")
    for field, value in values.items():
        problem = _value_problem(field, value)
        if problem:
            raise ValueError(f"{key_of.get(field, field)}={value!r}: {problem}")
    return BertConfig(**values)
