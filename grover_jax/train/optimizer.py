"""AdamW with BERT's weight-decay exclusions, global-norm clipping and warm-up + decay schedule."""

from typing import Any

import jax
import ml_collections
import optax

from grover_jax.configuration import ConfigError

# Leaves that are decayed: Dense kernels and embedding tables. Biases and LayerNorm scale/bias
# are not (BERT / DNABERT `no_decay = ["bias", "LayerNorm.weight"]`): decaying a norm's scale
# towards 0 fights the normalisation instead of regularising.
_DECAYED_LEAVES = ("kernel", "embedding")


def learning_rate_schedule(train_cfg: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warm-up 0 → learning_rate over warmup_steps, then linear/cosine decay to 0 at
    num_steps (HF `get_linear_schedule_with_warmup`, as DNABERT)."""
    peak, warmup, total = train_cfg.learning_rate, train_cfg.warmup_steps, train_cfg.num_steps
    if not 0 <= warmup < total:
        raise ConfigError(f"train.warmup_steps={warmup} must be in [0, train.num_steps={total})")
    if train_cfg.decay == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=0.0)
    if train_cfg.decay != "linear":
        raise ConfigError(f"train.decay={train_cfg.decay!r}: use 'linear' or 'cosine'")
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, peak, warmup),
            optax.linear_schedule(peak, 0.0, total - warmup),
        ],
        [warmup],
    )


def weight_decay_mask(params: Any) -> Any:
    """True where AdamW's decoupled weight decay applies (boxed or plain parameter trees)."""

    def decayed(path: tuple, _) -> bool:
        leaf_name = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)][-1]
        return leaf_name in _DECAYED_LEAVES

    return jax.tree_util.tree_map_with_path(decayed, params)


def make_optimizer(train_cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(train_cfg.clip_norm),
        optax.adamw(
            learning_rate_schedule(train_cfg),
            b1=train_cfg.b1,
            b2=train_cfg.b2,
            eps=train_cfg.eps,
            weight_decay=train_cfg.weight_decay,
            mask=weight_decay_mask,
        ),
    )
