"""Blockwise softmax attention with its own backward pass (`model.attention_implementation =
"blockwise"`): O(L) saved activations per head instead of O(L²).

XLA's attention keeps the whole [B, H, L, L] probabilities (and the dropout mask) for the backward
pass: 32 MB per layer at batch 8, 4 heads, 512 tokens; 1.6 GB for GROVER-base at batch 64. This
walks the batch in blocks of rows (`lax.map`), keeps only the output and the row log-sum-exp, and
recomputes each block's probabilities in the backward pass (the FlashAttention recipe, with whole
rows per block because 512 keys fit). Dropout on the probabilities uses the hashed mask of
`dropout.py`, so the backward pass regenerates it. On a CPU it costs ~5 % of a training step
against XLA's attention once host memory is reused (host_memory.py), and wins when it is not
(every fresh buffer then page-faults): BENCHMARKS.md, "Pretraining throughput".

Blocks are strided over the batch (block i holds rows i, i + n, ...), so under data/fsdp sharding
every block is spread over all batch shards, as the micro-batches of gradient accumulation are.
Numerics: logits, softmax and the probabilities' products in float32 (inputs may be bf16).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from grover_jax.model.dropout import apply_keep_mask, dropout_seed, hashed_keep_mask
from grover_jax.parallel.rules import batch_shards, from_strided_blocks, strided_blocks

Array = jax.Array

_NEG = float(jnp.finfo(jnp.float32).min)


def _block_logits(q_NxHxLxK: Array, k_NxHxLxK: Array, key_bias_Nx1x1xL: Array) -> Array:
    scale = q_NxHxLxK.shape[-1] ** -0.5
    logits = jnp.einsum("nhqk,nhsk->nhqs", q_NxHxLxK, k_NxHxLxK, preferred_element_type=jnp.float32)
    return logits * scale + key_bias_Nx1x1xL


def _block_keep(seed: Array, rows_N: Array, num_heads: int, length: int, rate: float) -> Array:
    # One hash row per (batch row, head): the same bits whichever block or shard holds it.
    row_heads_NxH = rows_N[:, None] * num_heads + jnp.arange(num_heads, dtype=jnp.uint32)[None, :]
    return hashed_keep_mask(seed, row_heads_NxH, (length, length), rate)


def _block_forward(q, k, v, key_bias, rows, seed, rate):
    logits = _block_logits(q, k, key_bias)
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    unnormalised = jnp.exp(logits - row_max)
    row_sum = jnp.sum(unnormalised, axis=-1, keepdims=True)
    probs = unnormalised * (1.0 / row_sum)
    if rate > 0.0:
        keep = _block_keep(seed, rows, q.shape[1], q.shape[2], rate)
        probs = apply_keep_mask(probs, keep, rate)
    out = jnp.einsum("nhqs,nhsk->nhqk", probs.astype(v.dtype), v)
    return out, (row_max + jnp.log(row_sum))[..., 0]


def _block_backward(q, k, v, key_bias, rows, seed, rate, out, logsumexp, d_out):
    probs = jnp.exp(_block_logits(q, k, key_bias) - logsumexp[..., None])
    d_dropped = jnp.einsum("nhqk,nhsk->nhqs", d_out, v, preferred_element_type=jnp.float32)
    if rate > 0.0:
        keep = _block_keep(seed, rows, q.shape[1], q.shape[2], rate)
        dropped = apply_keep_mask(probs, keep, rate)
        d_probs = apply_keep_mask(d_dropped, keep, rate)
    else:
        dropped, d_probs = probs, d_dropped
    d_v = jnp.einsum("nhqs,nhqk->nhsk", dropped.astype(d_out.dtype), d_out)
    # Softmax backward: rowsum(P * dP) equals rowsum(dO * O), which is far cheaper.
    row_dot = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)
    d_logits = probs * (d_probs - row_dot[..., None]) * (q.shape[-1] ** -0.5)
    d_q = jnp.einsum("nhqs,nhsk->nhqk", d_logits.astype(q.dtype), k)
    d_k = jnp.einsum("nhqs,nhqk->nhsk", d_logits.astype(q.dtype), q)
    return d_q, d_k, d_v


def _heads_major(x_BxLxHxK: Array) -> Array:
    return nn.with_logical_constraint(
        x_BxLxHxK.transpose(0, 2, 1, 3), ("batch", "heads", "length", "kv")
    )


def _length_major(x_BxHxLxK: Array) -> Array:
    return nn.with_logical_constraint(
        x_BxHxLxK.transpose(0, 2, 1, 3), ("batch", "length", "heads", "kv")
    )


def key_padding_bias(key_is_real_BxL: Array) -> Array:
    """[B, 1, 1, L]: 0 for real keys, float32's minimum for padding, added to the logits (HF's
    extended attention mask; its gradient is the identity, unlike a select's)."""
    return jnp.where(key_is_real_BxL, 0.0, _NEG)[:, None, None, :]


def _forward(q, k, v, key_is_real, seed, rate, n_blocks):
    key_bias = key_padding_bias(key_is_real)
    rows = jnp.arange(q.shape[0], dtype=jnp.uint32)
    q, k, v = _heads_major(q), _heads_major(k), _heads_major(v)
    blocks = tuple(strided_blocks(x, n_blocks) for x in (q, k, v, key_bias, rows))
    out, logsumexp = jax.lax.map(lambda xs: _block_forward(*xs, seed, rate), blocks)
    out, logsumexp = from_strided_blocks(out), from_strided_blocks(logsumexp)
    return _length_major(out), (q, k, v, key_bias, rows, seed, out, logsumexp)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _attention(q, k, v, key_is_real, seed, rate, n_blocks):
    return _forward(q, k, v, key_is_real, seed, rate, n_blocks)[0]


def _attention_backward(rate, n_blocks, residuals, d_out):
    q, k, v, key_bias, rows, seed, out, logsumexp = residuals
    blocks = tuple(
        strided_blocks(x, n_blocks)
        for x in (q, k, v, key_bias, rows, out, logsumexp, _heads_major(d_out))
    )

    def block(xs):
        q, k, v, key_bias, rows, out, logsumexp, d_out = xs
        return _block_backward(q, k, v, key_bias, rows, seed, rate, out, logsumexp, d_out)

    d_q, d_k, d_v = (_length_major(from_strided_blocks(d)) for d in jax.lax.map(block, blocks))
    return d_q, d_k, d_v, None, None


_attention.defvjp(_forward, _attention_backward)


def attention_dropout(probs_BxHxLxL: Array, rate: float, rng: str, key: Array) -> Array:
    """Dropout on whole [B, H, L, L] attention weights (XLA's path; normalised or not, dropout
    commutes with the row normalisation): with rng "hash" the same mask the blockwise kernel
    draws from the same key."""
    batch, num_heads, length, _ = probs_BxHxLxL.shape
    if rng == "hash":
        rows_B = jnp.arange(batch, dtype=jnp.uint32)
        keep = _block_keep(dropout_seed(key), rows_B, num_heads, length, rate)
    else:
        keep = jax.random.bernoulli(key, 1.0 - rate, probs_BxHxLxL.shape)
    return apply_keep_mask(probs_BxHxLxL, keep, rate)


def blockwise_attention(
    q_BxLxHxK: Array,
    k_BxLxHxK: Array,
    v_BxLxHxK: Array,
    key_is_real_BxL: Array,
    *,
    dropout_rate: float = 0.0,
    dropout_seed: Array | None = None,
    rows_per_block: int = 0,
) -> Array:
    """softmax(q kᵀ / √K, keys masked by `key_is_real`) [dropout] v → [B, L, H, K].

    `rows_per_block` batch rows per block (0: one row per batch shard, i.e. one per device on
    a data-parallel mesh); it must divide the batch. Dropout needs `dropout_seed` (uint32).
    """
    batch = q_BxLxHxK.shape[0]
    rows_per_block = rows_per_block or min(batch_shards(), batch)
    if batch % rows_per_block:
        rows_per_block = batch
    if dropout_rate > 0.0 and dropout_seed is None:
        raise ValueError("attention dropout needs a dropout_seed")
    seed = jnp.zeros((), jnp.uint32) if dropout_seed is None else dropout_seed
    return _attention(
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, key_is_real_BxL.astype(bool), seed,
        float(dropout_rate), batch // rows_per_block,
    )
