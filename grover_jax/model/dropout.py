"""Dropout whose mask is a hash of (seed, element index): cheap, and recomputable anywhere.

JAX's default dropout draws a threefry-2x32 (20 rounds) uniform float per element. On a CPU that
is ~85 ms for the 8 x 4 x 512 x 512 attention probabilities of one layer at batch 8, more than the
attention matmuls themselves. A counter-based hash of the element's global index costs a few
integer ops fused into the surrounding elementwise work, and, because the mask is a pure function
of (seed, index), the blockwise attention's backward pass regenerates it instead of storing it (as
FlashAttention does with Philox).

The hash: a per-row seed from the layer's dropout key and the row (batch row, or batch row x
head), then two rounds of murmur3's 32-bit finaliser over the within-row counter, the second
keyed again by the row so rows never share a shifted copy of one stream. Keep probability is
1 - round(rate * 2^32) / 2^32 (exact to 2^-32). `model.dropout_rng = "threefry"` restores flax's
`nn.Dropout` (not usable by the blockwise attention, which then falls back to XLA's).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

_GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: spreads consecutive counters over the whole range
_ROW_SALT_A = 0x632BE5AB
_ROW_SALT_B = 0x85157AF5


def _fmix32(x: Array) -> Array:
    """murmur3's finaliser: a bijection on uint32 with full avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def dropout_seed(key: Array) -> Array:
    """A uint32 seed from a jax PRNG key (one threefry draw per dropout site and step)."""
    return jax.random.bits(key, (), jnp.uint32)


def drop_threshold(rate: float) -> int:
    return min(int(round(rate * 2**32)), 2**32 - 1)


def hashed_keep_mask(seed: Array, row_ids: Array, inner_shape: tuple[int, ...], rate: float) -> Array:
    """bool [*row_ids.shape, *inner_shape]: True where the element is kept.

    `row_ids` (integers) name the rows globally (so a block of rows, or a shard, draws the same
    bits as the whole array would); elements within a row are counted in row-major order.
    """
    inner_size = 1
    for n in inner_shape:
        inner_size *= n
    if inner_size >= 2**32:
        raise ValueError(f"dropout rows of {inner_size} elements exceed the 32-bit counter")
    rows = row_ids.astype(jnp.uint32)
    seed_a = _fmix32(seed ^ _fmix32(rows * jnp.uint32(_GOLDEN) + jnp.uint32(_ROW_SALT_A)))
    seed_b = _fmix32(seed_a ^ jnp.uint32(_ROW_SALT_B))
    counter = jnp.zeros(inner_shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(inner_shape))):
        counter = counter + jax.lax.broadcasted_iota(jnp.uint32, inner_shape, axis) * jnp.uint32(stride)
        stride *= inner_shape[axis]
    expand = (...,) + (None,) * len(inner_shape)
    counter = counter[(None,) * rows.ndim]
    bits = _fmix32(counter * jnp.uint32(_GOLDEN) + seed_a[expand])
    bits = _fmix32(bits ^ seed_b[expand])
    return bits >= jnp.uint32(drop_threshold(rate))


def apply_keep_mask(x: Array, keep: Array, rate: float) -> Array:
    """Inverted dropout: kept elements scaled by 1 / (1 - rate), the rest zero."""
    return jnp.where(keep, x * jnp.asarray(1.0 / (1.0 - rate), x.dtype), jnp.zeros((), x.dtype))


def hashed_dropout(x: Array, seed: Array, rate: float) -> Array:
    """Inverted dropout of `x` with rows along axis 0."""
    rows = jnp.arange(x.shape[0], dtype=jnp.uint32)
    return apply_keep_mask(x, hashed_keep_mask(seed, rows, x.shape[1:], rate), rate)


class Dropout(nn.Module):
    """nn.Dropout with a choice of mask generator ("hash" or "threefry"); draws from "dropout"."""

    rate: float
    rng: str = "hash"

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        if deterministic or self.rate == 0.0:
            return x
        if self.rng == "threefry":
            return nn.Dropout(self.rate)(x, deterministic=False)
        return hashed_dropout(x, dropout_seed(self.make_rng("dropout")), self.rate)
