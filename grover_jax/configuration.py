"""Loading run configs: `configs/*.py` files (big_vision style `get_config(arg)`) plus `--set a.b=c`."""

import ast
import importlib
import importlib.util
from pathlib import Path

import ml_collections

from grover_jax.errors import GroverError


class ConfigError(GroverError):
    pass


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """`spec` is a config file (`configs/tiny.py`, optionally `:arg`) or a bundled config's name
    (`tiny`, `grover_base`); overrides are `section.field=value`, type-checked against the config."""
    spec, _, arg = spec.partition(":")
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        module_spec = importlib.util.spec_from_file_location(f"_grover_config_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001 - any error in a user's config file is a config error
            raise ConfigError(f"{path}: cannot load config ({type(error).__name__}: {error})") from None
    else:
        try:
            module = importlib.import_module(f"grover_jax.configs.{spec}")
        except ModuleNotFoundError:
            raise ConfigError(f"no bundled config named {spec!r} (try tiny, grover_base, or a path)") from None
    config = module.get_config(arg or None)
    apply_overrides(config, overrides)
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str] | tuple[str, ...]) -> None:
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep:
            raise ConfigError(f"--set {override!r}: expected section.field=value")
        parent, _, field = key.strip().rpartition(".")
        node = config
        for part in filter(None, parent.split(".")):
            if part not in node:
                raise ConfigError(f"--set {override!r}: the config has no section {part!r}")
            node = node[part]
        if field not in node:
            raise ConfigError(f"--set {override!r}: the config has no field {key.strip()!r}")
        current = node[field]
        value = _parse_value(text.strip())
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"--set {override!r}: {key} takes true/false")
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(current, str) and not isinstance(value, str):
            value = text.strip()
        if current is not None and type(value) is not type(current):
            raise ConfigError(f"--set {override!r}: {key} is a {type(current).__name__}, got {value!r}")
        node[field] = value


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# Whole numbers that must be >= 1 wherever a config has them: a zero size or count reaches the
# compiled code as an empty array or a division by zero, long after a run folder was made.
_AT_LEAST_ONE = (
    "bpe.cycles", "model.hidden_size", "model.num_layers", "model.num_heads", "model.intermediate_size",
    "model.max_position_embeddings", "data.seq_len", "data.eval_batches", "train.batch_size",
    "train.grad_accum_steps", "train.num_steps", "train.log_every", "train.checkpoint_every",
    "train.keep_checkpoints", "train.max_epochs", "next_kmer.input_bases", "next_kmer.seq_len",
    "next_kmer.n_train", "next_kmer.n_valid", "next_kmer.n_test",
)
# 0 means "default" or "none" for these.
_AT_LEAST_ZERO = (
    "bpe.max_token_length", "model.vocab_size", "model.max_tokens", "data.min_window_tokens",
    "train.warmup_steps", "train.patience", "task.window", "task.span", "next_kmer.markov_order",
)
_FRACTIONS = (
    "data.mask_token_fraction", "data.random_token_fraction", "model.hidden_dropout",
    "model.attention_dropout", "model.classifier_dropout", "next_kmer.dropout",
)


def _fields(config: ml_collections.ConfigDict, names: tuple[str, ...]):
    for name in names:
        section, field = name.split(".")
        if section in config and field in config[section]:
            yield name, config[section][field]


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Refuse values no run can use, naming the field, before any folder is made (ConfigError)."""
    for name, value in _fields(config, _AT_LEAST_ONE):
        if value < 1:
            raise ConfigError(f"{name}={value}: must be >= 1")
    for name, value in _fields(config, _AT_LEAST_ZERO):
        if value < 0:
            raise ConfigError(f"{name}={value}: must be >= 0")
    for name, value in _fields(config, _FRACTIONS):
        if not 0 <= value <= 1:
            raise ConfigError(f"{name}={value}: must be between 0 and 1")
    values = dict(_fields(config, ("model.hidden_size", "model.num_heads", "model.max_position_embeddings",
                                   "data.seq_len", "data.mask_rate", "data.min_window_tokens",
                                   "data.mask_token_fraction", "data.random_token_fraction", "train.batch_size",
                                   "train.grad_accum_steps", "train.eval_every", "train.max_epochs",
                                   "train.learning_rate")))
    if values.get("model.hidden_size", 1) % values.get("model.num_heads", 1):
        raise ConfigError(f"model.hidden_size={values['model.hidden_size']} is not divisible by "
                          f"model.num_heads={values['model.num_heads']}")
    if values.get("data.seq_len", 0) > values.get("model.max_position_embeddings", float("inf")):
        raise ConfigError(f"data.seq_len={values['data.seq_len']} exceeds "
                          f"model.max_position_embeddings={values['model.max_position_embeddings']}")
    if not 0 < values.get("data.mask_rate", 1) <= 1:
        raise ConfigError(f"data.mask_rate={values['data.mask_rate']}: must be in (0, 1]")
    if "data.min_window_tokens" in values and "data.seq_len" in values and (
            values["data.min_window_tokens"] > values["data.seq_len"] - 2):
        raise ConfigError(f"data.min_window_tokens={values['data.min_window_tokens']} exceeds data.seq_len - 2 "
                          f"= {values['data.seq_len'] - 2} tokens ([CLS] and [SEP] take two)")
    if values.get("data.mask_token_fraction", 0) + values.get("data.random_token_fraction", 0) > 1:
        raise ConfigError("data.mask_token_fraction + data.random_token_fraction must be at most 1")
    if values.get("train.batch_size", 1) % values.get("train.grad_accum_steps", 1):
        raise ConfigError(f"train.batch_size={values['train.batch_size']} is not a multiple of "
                          f"train.grad_accum_steps={values['train.grad_accum_steps']}")
    # Fine-tuning reads train.eval_every=0 as "once per epoch"; step-counted runs divide by it.
    least_eval_every = 0 if "train.max_epochs" in values else 1
    if values.get("train.eval_every", least_eval_every) < least_eval_every:
        raise ConfigError(f"train.eval_every={values['train.eval_every']}: must be >= {least_eval_every}")
    if values.get("train.learning_rate", 1) <= 0:
        raise ConfigError(f"train.learning_rate={values['train.learning_rate']}: must be > 0")
    for k in config.get("next_kmer", {}).get("ks", ()):
        if k < 1:
            raise ConfigError(f"next_kmer.ks={tuple(config.next_kmer.ks)}: every k must be >= 1")
    if "sweep" in config:
        for name in ("cycles", "kmers"):
            if any(n < 1 for n in config.sweep[name]):
                raise ConfigError(f"sweep.{name}={tuple(config.sweep[name])}: every value must be >= 1")
        try:
            validate_config(load_config(config.sweep.pretrain_config, list(config.sweep.pretrain_overrides)))
        except ConfigError as error:
            raise ConfigError(f"sweep.pretrain_overrides: {error}") from None
