"""Optimizer, training state, pure MLM train/eval steps and orbax checkpointing."""

from grover_jax.train.checkpoint import Checkpointer, CheckpointMismatchError
from grover_jax.train.mlm_step import (
    compile_eval_step,
    compile_train_step,
    eval_step,
    loss_fn,
    mlm_head_positions,
    mlm_targets_per_row,
    mlm_sums,
    model_flops_per_token,
    train_step,
)
from grover_jax.train.optimizer import learning_rate_schedule, make_optimizer, weight_decay_mask
from grover_jax.train.state import (
    TrainState,
    abstract_train_state,
    create_train_state,
    train_state_sharding,
)

__all__ = [
    "CheckpointMismatchError",
    "Checkpointer",
    "TrainState",
    "abstract_train_state",
    "compile_eval_step",
    "compile_train_step",
    "create_train_state",
    "eval_step",
    "learning_rate_schedule",
    "loss_fn",
    "mlm_head_positions",
    "mlm_targets_per_row",
    "make_optimizer",
    "mlm_sums",
    "model_flops_per_token",
    "train_state_sharding",
    "train_step",
    "weight_decay_mask",
]
