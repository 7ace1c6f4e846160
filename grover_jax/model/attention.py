"""Attention for the BERT: one entry point, `attention(q, k, v, key_is_real, implementation=...)`,
and the kernels it runs (`model.attention_implementation`; bert.attention_path resolves "auto").

"xla" (`xla_attention`): the softmax spelled out over whole [B, H, L, L] matrices, differentiated
by JAX. Spelled out rather than jax.nn.dot_product_attention so that dropout sits between the
softmax and the values, as in HF BERT, and because XLA:CPU runs this form faster (BENCHMARKS.md).

"xla_cpu" (`xla_cpu_attention`, auto on CPUs): whole [B, H, L, L] matrices, as XLA's, with a
hand-written backward pass that fixes the form of every matmul. Left to itself XLA folds the
head transposes and the backward pass's transposed products into the dots, in forms XLA:CPU's
matmul runs much slower: P·V written out as [B, L, H, K], and dV = Pᵀ·dO, a contraction over P's
major axis, rather than dVᵀ = dOᵀ·P. Each operand and product here is pinned by an optimization
barrier to the form measured fast (BENCHMARKS.md, "Pretraining throughput"). Dropout takes a
precomputed keep mask (hashed or threefry), kept for the backward pass as a bool array.

"blockwise" (`blockwise_attention`): O(L) saved activations per head instead of O(L²). XLA's
attention keeps the whole [B, H, L, L] probabilities (and the dropout mask) for the backward
pass: 32 MB per layer at batch 8, 4 heads, 512 tokens; 1.6 GB for GROVER-base at batch 64. This
walks the batch in blocks of rows (`lax.map`), keeps only the output and the row log-sum-exp, and
recomputes each block's probabilities in the backward pass (the FlashAttention recipe, with whole
rows per block because 512 keys fit). Dropout on the probabilities uses the hashed mask of
`dropout.py`, so the backward pass regenerates it. On a CPU it is slower than whole-matrix
attention once host memory is reused (host_memory.py), and faster when it is not (every fresh
buffer then page-faults): BENCHMARKS.md, "Pretraining throughput".

"cudnn": cuDNN's fused kernel through jax.nn.dot_product_attention (GPUs, half precision), which
has no dropout on the probabilities.

Blocks are strided over the batch (block i holds rows i, i + n, ...), so under data/fsdp sharding
every block is spread over all batch shards, as the micro-batches of gradient accumulation are.
Numerics (all but cuDNN's): logits and softmax in float32; with bf16 inputs the probabilities (and
their gradients) enter the matmuls as bf16, which accumulate in float32.
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


def _pinned(x: Array) -> Array:
    # XLA folds a transpose into the dot beside it, choosing forms XLA:CPU's matmuls run much
    # slower (a product written out transposed, [.., K, L] for [.., L, K], or a contraction over
    # an operand's major axis). The barrier keeps each operand and product in the form written
    # here (BENCHMARKS.md, "Pretraining throughput").
    return jax.lax.optimization_barrier(x)


def _cpu_forward(q, k, v, key_is_real, keep, rate):
    scale = jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
    q, k, v = (_pinned(_heads_major(x)) for x in (q * scale, k, v))
    logits = _pinned(jnp.einsum("bhqk,bhsk->bhqs", q, k, preferred_element_type=jnp.float32))
    logits = logits + key_padding_bias(key_is_real)
    # Normalised after the value product: a division over [.., L, K] instead of [.., L, L].
    unnormalised = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    inv_row_sum = 1.0 / jnp.sum(unnormalised, axis=-1, keepdims=True)
    dropped = unnormalised if keep is None else apply_keep_mask(unnormalised, keep, rate)
    out = _pinned(jnp.einsum("bhqs,bhsk->bhqk", dropped.astype(v.dtype), v,
                             preferred_element_type=jnp.float32)) * inv_row_sum
    out = out.astype(v.dtype)
    return _length_major(out), (q, k, v, keep, unnormalised, inv_row_sum, out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _cpu_attention(q, k, v, key_is_real, keep, rate):
    return _cpu_forward(q, k, v, key_is_real, keep, rate)[0]


def _cpu_backward(rate, residuals, d_out):
    q, k, v, keep, unnormalised, inv_row_sum, out = residuals
    d_out = _pinned(_heads_major(d_out))
    probs = unnormalised * inv_row_sum
    dropped = probs if keep is None else apply_keep_mask(probs, keep, rate)
    d_dropped = _pinned(jnp.einsum("bhqk,bhsk->bhqs", d_out, v, preferred_element_type=jnp.float32))
    d_probs = d_dropped if keep is None else apply_keep_mask(d_dropped, keep, rate)
    # dV and dK as transposed products ([K, L] = [K, L]·[L, L]), whose operands XLA:CPU
    # reads in their stored order, then transposed back (cheap at [.., L, K]).
    d_v_KxL = _pinned(jnp.einsum("bhkq,bhqs->bhks", _pinned(jnp.swapaxes(d_out, 2, 3)),
                                 dropped.astype(d_out.dtype), preferred_element_type=jnp.float32))
    row_dot = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1, keepdims=True)
    d_logits = (probs * (d_probs - row_dot)).astype(q.dtype)
    d_q = _pinned(jnp.einsum("bhqs,bhsk->bhqk", d_logits, k, preferred_element_type=jnp.float32))
    d_k_KxL = _pinned(jnp.einsum("bhkq,bhqs->bhks", _pinned(jnp.swapaxes(q, 2, 3)), d_logits,
                                 preferred_element_type=jnp.float32))
    scale = q.shape[-1] ** -0.5
    d_q = _length_major(d_q * scale).astype(q.dtype)
    d_k = _length_major(jnp.swapaxes(d_k_KxL, 2, 3)).astype(k.dtype)
    d_v = _length_major(jnp.swapaxes(d_v_KxL, 2, 3)).astype(v.dtype)
    return d_q, d_k, d_v, None, None


_cpu_attention.defvjp(_cpu_forward, _cpu_backward)


def attention_keep_mask(shape_BxHxLxL: tuple[int, ...], rate: float, rng: str, key: Array) -> Array:
    """bool [B, H, L, L]: which attention weights dropout keeps; with rng "hash" the same mask
    the blockwise kernel draws from the same key."""
    batch, num_heads, length, _ = shape_BxHxLxL
    if rng == "hash":
        rows_B = jnp.arange(batch, dtype=jnp.uint32)
        return _block_keep(dropout_seed(key), rows_B, num_heads, length, rate)
    return jax.random.bernoulli(key, 1.0 - rate, shape_BxHxLxL)


def attention_dropout(probs_BxHxLxL: Array, rate: float, rng: str, key: Array) -> Array:
    """Dropout on whole [B, H, L, L] attention weights (normalised or not: dropout commutes
    with the row normalisation)."""
    keep = attention_keep_mask(probs_BxHxLxL.shape, rate, rng, key)
    return apply_keep_mask(probs_BxHxLxL, keep, rate)


def xla_cpu_attention(
    q_BxLxHxK: Array,
    k_BxLxHxK: Array,
    v_BxLxHxK: Array,
    key_is_real_BxL: Array,
    *,
    dropout_rate: float = 0.0,
    dropout_rng: str = "hash",
    dropout_key: Array | None = None,
) -> Array:
    """softmax(q kᵀ / √K, keys masked by `key_is_real`) [dropout] v → [B, L, H, K], whole
    [B, H, L, L] matrices, with a backward pass whose matmuls keep XLA:CPU's fast forms."""
    batch, length, num_heads, _ = q_BxLxHxK.shape
    keep = None
    if dropout_rate > 0.0:
        if dropout_key is None:
            raise ValueError("attention dropout needs a dropout_key")
        keep = attention_keep_mask((batch, num_heads, length, length), dropout_rate, dropout_rng, dropout_key)
    return _cpu_attention(
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, key_is_real_BxL.astype(bool), keep, float(dropout_rate)
    )


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


def xla_attention(
    q_BxLxHxK: Array,
    k_BxLxHxK: Array,
    v_BxLxHxK: Array,
    key_is_real_BxL: Array,
    *,
    dropout_rate: float = 0.0,
    dropout_rng: str = "hash",
    dropout_key: Array | None = None,
) -> Array:
    """softmax(q kᵀ / √K, keys masked by `key_is_real`) [dropout] v → [B, L, H, K], spelled out
    over whole [B, H, L, L] matrices; logits and softmax in float32 even for bf16 inputs."""
    # The 1/√K scale on q ([B, L, H, K]) rather than on the logits ([B, H, L, L]); exact for
    # K = 64 (a power of two), within rounding otherwise.
    scale = jnp.asarray(q_BxLxHxK.shape[-1] ** -0.5, q_BxLxHxK.dtype)
    logits_BxHxLxL = jnp.einsum(
        "bqhk,bshk->bhqs", q_BxLxHxK * scale, k_BxLxHxK, preferred_element_type=jnp.float32
    )
    logits_BxHxLxL = logits_BxHxLxL + key_padding_bias(key_is_real_BxL)
    # Softmax normalised after the value product: a division over [.., L, K] instead of over
    # [.., L, L]. The row maximum only guards exp's range; the result does not depend on it, so
    # no gradient flows through it.
    row_max = jax.lax.stop_gradient(jnp.max(logits_BxHxLxL, axis=-1, keepdims=True))
    unnormalised_BxHxLxL = jnp.exp(logits_BxHxLxL - row_max)
    row_sum_BxLxH = jnp.sum(unnormalised_BxHxLxL, axis=-1).transpose(0, 2, 1)
    if dropout_rate > 0.0:
        if dropout_key is None:
            raise ValueError("attention dropout needs a dropout_key")
        unnormalised_BxHxLxL = attention_dropout(unnormalised_BxHxLxL, dropout_rate, dropout_rng, dropout_key)
    out_BxLxHxK = jnp.einsum(
        "bhqs,bshk->bqhk",
        unnormalised_BxHxLxL.astype(v_BxLxHxK.dtype),
        v_BxLxHxK,
        preferred_element_type=jnp.float32,
    )
    return (out_BxLxHxK / row_sum_BxLxH[..., None]).astype(v_BxLxHxK.dtype)


def attention(
    q_BxLxHxK: Array,
    k_BxLxHxK: Array,
    v_BxLxHxK: Array,
    key_is_real_BxL: Array,
    *,
    implementation: str,
    dropout_rate: float = 0.0,
    dropout_rng: str = "hash",
    dropout_key: Array | None = None,
) -> Array:
    """softmax(q kᵀ / √K, keys masked by `key_is_real`) [dropout] v → [B, L, H, K] by the kernel
    `implementation` names: "xla", "xla_cpu", "blockwise" or "cudnn" (see the module docstring).
    Dropout (`dropout_rate` > 0) draws its mask from `dropout_key` ("hash" or "threefry" masks);
    "blockwise" regenerates only hashed masks and "cudnn" has no attention dropout."""
    if implementation == "xla":
        return xla_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, key_is_real_BxL, dropout_rate=dropout_rate,
                             dropout_rng=dropout_rng, dropout_key=dropout_key)
    if implementation == "xla_cpu":
        return xla_cpu_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, key_is_real_BxL, dropout_rate=dropout_rate,
                                 dropout_rng=dropout_rng, dropout_key=dropout_key)
    if implementation == "blockwise":
        if dropout_rate > 0.0 and dropout_rng != "hash":
            raise ValueError("blockwise attention dropout regenerates hashed masks: it needs dropout_rng 'hash'")
        seed = dropout_seed(dropout_key) if dropout_rate > 0.0 and dropout_key is not None else None
        return blockwise_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, key_is_real_BxL, dropout_rate=dropout_rate,
                                   dropout_seed=seed)
    if implementation == "cudnn":
        if dropout_rate > 0.0:
            raise ValueError("cuDNN's fused attention has no dropout on the probabilities")
        # cuDNN's fused kernel takes padding as lengths: batches here are right-padded
        # ([CLS] tokens [SEP] [PAD]...), so the real keys are the first `length` positions.
        lengths_B = jnp.sum(key_is_real_BxL, axis=-1).astype(jnp.int32)
        return jax.nn.dot_product_attention(
            q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, key_value_seq_lengths=lengths_B, implementation="cudnn"
        )
    raise ValueError(f"no attention implementation {implementation!r} (use 'xla', 'xla_cpu', 'blockwise' or 'cudnn')")
