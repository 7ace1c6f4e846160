"""Masked-token loss and the pure, jit-able pretraining and evaluation steps.

Batch contract (numpy from the data pipeline, then global arrays via `parallel.shard_batch`):
    input_ids      int32   [B, L]  tokens after masking ([MASK] / random / unchanged)
    attention_mask int32   [B, L]  1 = real token, 0 = padding
    mlm_labels     int32   [B, L]  the original token id (read only where mlm_weights > 0)
    mlm_weights    float32 [B, L]  1.0 at prediction targets, 0 elsewhere (never 1 on padding)
"""

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training.train_state import TrainState
from jax.sharding import Mesh

from grover_jax.parallel.rules import (
    activation_sharding,
    batch_sharding,
    replicated,
    strided_blocks,
)
from grover_jax.train.optimizer import learning_rate_schedule

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def mlm_sums(logits_BxLxV: jax.Array, labels_BxL: jax.Array, weights_BxL: jax.Array) -> Metrics:
    """Sums (not means) over targets, so that micro-batches and eval batches add up exactly."""
    # Labels off-target are never read: an out-of-range id there would otherwise gather NaN.
    labels_BxL = jnp.where(weights_BxL > 0, labels_BxL, 0)
    nll_BxL = optax.softmax_cross_entropy_with_integer_labels(
        logits_BxLxV.astype(jnp.float32), labels_BxL
    )
    correct_BxL = jnp.argmax(logits_BxLxV, axis=-1) == labels_BxL
    return {
        "loss_sum": jnp.sum(nll_BxL * weights_BxL),
        "n_targets": jnp.sum(weights_BxL),
        "n_correct": jnp.sum(correct_BxL * weights_BxL),
    }


def loss_fn(
    params: Any,
    apply_fn: Callable,
    batch: Batch,
    dropout_rng: jax.Array | None,
    targets_per_row: int = 0,
) -> tuple[jax.Array, Metrics]:
    """(summed masked-token cross-entropy, sums); dropout is on iff a dropout rng is given.

    With `targets_per_row` = T > 0 the MLM head (transform + [D × V] decoder) runs on T gathered
    positions per row instead of all L, the targets among them: the loss is the same, the head's
    work drops by L/T. Rows with more than T targets (the bound makes that a >6-sigma event)
    take the all-positions head instead, so no target is ever left out.
    """
    variables = {"params": params}
    h_BxLxD = apply_fn(
        variables,
        batch["input_ids"],
        batch["attention_mask"],
        deterministic=dropout_rng is None,
        rngs=None if dropout_rng is None else {"dropout": dropout_rng},
        method="encode",
    )
    labels_BxL, weights_BxL = batch["mlm_labels"], batch["mlm_weights"]

    def all_positions(h_BxLxD: jax.Array) -> Metrics:
        return mlm_sums(apply_fn(variables, h_BxLxD, method="predict_tokens"), labels_BxL, weights_BxL)

    length = weights_BxL.shape[1]
    if not 0 < targets_per_row < length:
        sums = all_positions(h_BxLxD)
        return sums["loss_sum"], sums

    def target_positions(h_BxLxD: jax.Array) -> Metrics:
        # Targets first (weight 1 > 0); the rest of the T slots are non-targets of weight 0.
        _, positions_BxT = jax.lax.top_k(weights_BxL, targets_per_row)
        take = functools.partial(jnp.take_along_axis, indices=positions_BxT, axis=1)
        h_BxTxD = jnp.take_along_axis(h_BxLxD, positions_BxT[:, :, None], axis=1)
        logits_BxTxV = apply_fn(variables, h_BxTxD, method="predict_tokens")
        return mlm_sums(logits_BxTxV, take(labels_BxL), take(weights_BxL))

    most_targets = jnp.max(jnp.sum(weights_BxL > 0, axis=1))
    sums = jax.lax.cond(most_targets <= targets_per_row, target_positions, all_positions, h_BxLxD)
    return sums["loss_sum"], sums


def mlm_head_positions(
    train_cfg: ml_collections.ConfigDict, data_cfg: ml_collections.ConfigDict | None
) -> int:
    """Positions per row the pretraining step's MLM head runs on (0: all of them)."""
    if data_cfg is None or not train_cfg.get("mlm_head_on_targets", True):
        return 0
    return mlm_targets_per_row(data_cfg)


def mlm_targets_per_row(data_cfg: ml_collections.ConfigDict) -> int:
    """A per-row bound on masked targets: mean + 6 sd of Binomial(L - 2, mask_rate), plus one.

    Targets are drawn per token (data/mlm.py), so a row's count is binomial; rows beyond the
    bound are still exact (loss_fn falls back to all positions), just not faster.
    """
    n, rate = data_cfg.seq_len - 2, data_cfg.mask_rate
    bound = math.ceil(n * rate + 6.0 * math.sqrt(n * rate * (1.0 - rate))) + 1
    return min(bound, data_cfg.seq_len)


def train_step(
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    *,
    grad_accum_steps: int,
    schedule: optax.Schedule,
    dropout: bool,
    targets_per_row: int = 0,
) -> tuple[TrainState, Metrics]:
    """One optimizer update from `batch` (all micro-batches of the step together).

    Gradients of summed losses are added over micro-batches and divided by the total number of
    targets at the end, which equals the big-batch gradient exactly: masked-token counts differ
    between micro-batches, so averaging per-micro-batch means would not.
    """
    # Per-step key from (base key, step): a resumed run draws the same dropout masks.
    step_rng = jax.random.fold_in(rng, state.step)
    micro_batches = jax.tree.map(
        lambda x: strided_blocks(x, grad_accum_steps, "micro-batches"), batch
    )
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def accumulate(carry: tuple[Any, Metrics], micro: tuple[Batch, jax.Array]):
        grad_sum, sums = carry
        micro_batch, index = micro
        dropout_rng = jax.random.fold_in(step_rng, index) if dropout else None
        (_, micro_sums), grads = grad_fn(
            state.params, state.apply_fn, micro_batch, dropout_rng, targets_per_row
        )
        return (
            jax.tree.map(jnp.add, grad_sum, grads),
            jax.tree.map(jnp.add, sums, micro_sums),
        ), None

    zero_sums = {k: jnp.zeros((), jnp.float32) for k in ("loss_sum", "n_targets", "n_correct")}
    zero_grads = jax.tree.map(jnp.zeros_like, state.params)
    (grad_sum, sums), _ = jax.lax.scan(
        accumulate, (zero_grads, zero_sums), (micro_batches, jnp.arange(grad_accum_steps))
    )
    n_targets = jnp.maximum(sums["n_targets"], 1.0)
    grads = jax.tree.map(lambda g: g / n_targets, grad_sum)
    metrics = {
        "loss": sums["loss_sum"] / n_targets,
        "accuracy": sums["n_correct"] / n_targets,
        "n_targets": sums["n_targets"],
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": schedule(state.step),
    }
    return state.apply_gradients(grads=grads), metrics


def eval_step(params: Any, batch: Batch, *, apply_fn: Callable) -> Metrics:
    """Sums of loss / targets / correct for one batch, without dropout; add them over batches."""
    return loss_fn(params, apply_fn, batch, None)[1]


def compile_train_step(
    train_cfg: ml_collections.ConfigDict,
    model_cfg: ml_collections.ConfigDict,
    mesh: Mesh,
    state_sharding: TrainState,
    data_cfg: ml_collections.ConfigDict | None = None,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
    """The jitted `train_step(state, batch, rng)`, not yet traced.

    Call it, or ahead of time `.lower(abstract_state, abstract_batch, abstract_rng).compile()`
    with `parallel.with_shardings` arguments. The state is donated: its buffers become the new
    state's. `rng` is the run's base key, the same on every process, e.g.
    `jax.random.PRNGKey(config.seed)`; dropout keys are folded from it and the step.
    With `data_cfg` (and `train.mlm_head_on_targets`, default on) the MLM head runs on the
    masked positions only (`loss_fn`), sized by `mlm_targets_per_row(data_cfg)`.
    """
    step = functools.partial(
        train_step,
        grad_accum_steps=train_cfg.grad_accum_steps,
        schedule=learning_rate_schedule(train_cfg),
        dropout=model_cfg.hidden_dropout > 0 or model_cfg.attention_dropout > 0,
        targets_per_row=mlm_head_positions(train_cfg, data_cfg),
    )

    def sharded_step(state: TrainState, batch: Batch, rng: jax.Array):
        with activation_sharding(mesh):
            return step(state, batch, rng)

    return jax.jit(
        sharded_step,
        in_shardings=(state_sharding, batch_sharding(mesh), replicated(mesh)),
        out_shardings=(state_sharding, replicated(mesh)),
        donate_argnums=0,
    )


def compile_eval_step(
    apply_fn: Callable, mesh: Mesh, params_sharding: Any
) -> Callable[[Any, Batch], Metrics]:
    """The jitted `eval_step(params, batch) -> sums` (replicated scalars)."""

    def sharded_eval(params: Any, batch: Batch) -> Metrics:
        with activation_sharding(mesh):
            return eval_step(params, batch, apply_fn=apply_fn)

    return jax.jit(
        sharded_eval,
        in_shardings=(params_sharding, batch_sharding(mesh)),
        out_shardings=replicated(mesh),
    )


def model_flops_per_token(
    model_cfg: ml_collections.ConfigDict,
    vocab_size: int,
    seq_len: int,
    head_positions: int = 0,
) -> float:
    """Training FLOPs per input token (forward + backward), for MFU.

    PaLM/MaxText accounting: 6 × (parameters used in matmuls) + 12 × layers × hidden × seq_len
    for attention scores and values. Counts what the step computes: the MLM head (transform +
    tied [hidden × vocab] decoder) at `head_positions` of every seq_len positions (0: all;
    the pretraining step runs it on `mlm_head_positions` gathered ones); embedding
    lookups, norms and biases are not matmuls and are left out. Bidirectional attention: no
    causal halving.
    """
    d, f, n_layers = model_cfg.hidden_size, model_cfg.intermediate_size, model_cfg.num_layers
    per_layer = 4 * d * d + 2 * d * f  # q, k, v, attention output; intermediate, output
    head = d * d + d * vocab_size  # MLM transform + tied decoder
    head_fraction = min(head_positions, seq_len) / seq_len if head_positions else 1.0
    matmul_params = n_layers * per_layer + head * head_fraction
    return 6.0 * matmul_params + 12.0 * n_layers * d * seq_len
