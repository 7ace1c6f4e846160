"""The blockwise and XLA:CPU attention kernels, and the hashed dropout masks they use.

Synthetic inputs on purpose: these test a mechanism (equal numbers, mask statistics), not the
model's behaviour on genomes (test_pretrain does that on real sequence).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grover_jax.configs import tiny
from grover_jax.model import make_model
from grover_jax.model.attention import attention_dropout, blockwise_attention, xla_cpu_attention
from grover_jax.model.bert import attention_path
from grover_jax.model.dropout import dropout_seed, hashed_dropout, hashed_keep_mask

B, L, H, K = 4, 24, 3, 8


@pytest.fixture(autouse=True)
def _no_implicit_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


def inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    q, k, v = (jnp.asarray(rng.normal(size=(B, L, H, K)), jnp.float32) for _ in range(3))
    lengths = np.array([L, 17, 9, L])
    key_is_real = jnp.asarray(np.arange(L)[None, :] < lengths[:, None])
    return q, k, v, key_is_real


def spelled_out(q, k, v, key_is_real, rate=0.0, key=None, rng="hash"):
    """Attention written out whole, autodiff'd by JAX: the reference for values and gradients."""
    logits = jnp.einsum("bqhk,bshk->bhqs", q, k) * K**-0.5
    logits = jnp.where(key_is_real[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1)
    if rate:
        probs = attention_dropout(probs, rate, rng, key)
    return jnp.einsum("bhqs,bshk->bqhk", probs, v)


def value_and_grads(attention, q, k, v):
    weights = jnp.asarray(np.random.default_rng(9).normal(size=(B, L, H, K)), jnp.float32)
    loss = lambda q, k, v: jnp.sum(attention(q, k, v) * weights)  # noqa: E731
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, v)


def assert_dropout_matches_the_spelled_out_attention(ours, q, k, v, key_is_real, key, rng):
    """`ours` (value and grads at rate 0.3) equals autodiff of the whole-matrix attention with the
    same dropout key, and differs from no dropout at all."""
    reference = value_and_grads(
        lambda q, k, v: spelled_out(q, k, v, key_is_real, 0.3, key, rng), q, k, v
    )
    no_dropout = value_and_grads(lambda q, k, v: spelled_out(q, k, v, key_is_real), q, k, v)
    assert not np.allclose(ours[0], no_dropout[0], rtol=1e-3)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5)
    for ours_grad, reference_grad in zip(ours[1], reference[1], strict=True):
        np.testing.assert_allclose(ours_grad, reference_grad, atol=2e-5)


@pytest.mark.parametrize("rows_per_block", [1, 2, B])
def test_blockwise_attention_equals_xla_attention_and_its_gradients(rows_per_block):
    q, k, v, key_is_real = inputs()
    ours = value_and_grads(
        lambda q, k, v: blockwise_attention(q, k, v, key_is_real, rows_per_block=rows_per_block),
        q, k, v,
    )
    xla = value_and_grads(
        lambda q, k, v: jax.nn.dot_product_attention(q, k, v, mask=key_is_real[:, None, None, :]),
        q, k, v,
    )
    np.testing.assert_allclose(ours[0], xla[0], rtol=1e-5)
    for ours_grad, xla_grad in zip(ours[1], xla[1], strict=True):
        np.testing.assert_allclose(ours_grad, xla_grad, atol=2e-5)


def test_blockwise_dropout_and_its_backward_equal_the_spelled_out_attention():
    # The kernel's own backward regenerates the dropout mask; autodiff of the whole-matrix
    # version with the same key is the reference.
    q, k, v, key_is_real = inputs(1)
    key = jax.random.key(5)
    ours = value_and_grads(
        lambda q, k, v: blockwise_attention(
            q, k, v, key_is_real, dropout_rate=0.3, dropout_seed=dropout_seed(key), rows_per_block=2
        ),
        q, k, v,
    )
    assert_dropout_matches_the_spelled_out_attention(ours, q, k, v, key_is_real, key, "hash")


def test_xla_cpu_attention_equals_xla_attention_and_its_gradients():
    q, k, v, key_is_real = inputs(2)
    ours = value_and_grads(lambda q, k, v: xla_cpu_attention(q, k, v, key_is_real), q, k, v)
    xla = value_and_grads(
        lambda q, k, v: jax.nn.dot_product_attention(q, k, v, mask=key_is_real[:, None, None, :]),
        q, k, v,
    )
    np.testing.assert_allclose(ours[0], xla[0], rtol=1e-5)
    for ours_grad, xla_grad in zip(ours[1], xla[1], strict=True):
        np.testing.assert_allclose(ours_grad, xla_grad, atol=2e-5)


@pytest.mark.parametrize("rng", ["hash", "threefry"])
def test_xla_cpu_dropout_and_its_backward_equal_the_spelled_out_attention(rng):
    q, k, v, key_is_real = inputs(3)
    key = jax.random.key(6)
    ours = value_and_grads(
        lambda q, k, v: xla_cpu_attention(
            q, k, v, key_is_real, dropout_rate=0.3, dropout_rng=rng, dropout_key=key
        ),
        q, k, v,
    )
    assert_dropout_matches_the_spelled_out_attention(ours, q, k, v, key_is_real, key, rng)


def test_xla_cpu_attention_in_bfloat16_keeps_the_dtype_and_the_float32_result():
    q, k, v, key_is_real = inputs(4)
    bf16 = [x.astype(jnp.bfloat16) for x in (q, k, v)]
    as_float32 = [x.astype(jnp.float32) for x in bf16]
    weights = jnp.asarray(np.random.default_rng(9).normal(size=(B, L, H, K)), jnp.float32)

    def loss(attention):
        return lambda q, k, v: jnp.sum(attention(q, k, v).astype(jnp.float32) * weights)

    ours = jax.value_and_grad(loss(lambda q, k, v: xla_cpu_attention(q, k, v, key_is_real)),
                              argnums=(0, 1, 2))(*bf16)
    reference = jax.value_and_grad(loss(lambda q, k, v: spelled_out(q, k, v, key_is_real)),
                                   argnums=(0, 1, 2))(*as_float32)
    out = xla_cpu_attention(*bf16, key_is_real)
    assert out.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in ours[1])
    np.testing.assert_allclose(np.asarray(out, np.float32), spelled_out(*as_float32, key_is_real), atol=3e-2)
    for ours_grad, reference_grad in zip(ours[1], reference[1], strict=True):
        scale = float(jnp.max(jnp.abs(reference_grad)))
        np.testing.assert_allclose(np.asarray(ours_grad, np.float32), reference_grad, atol=3e-2 * scale)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="tests what auto picks on a CPU")
def test_auto_attention_is_xla_cpu_on_this_cpu_and_falls_back_where_dropout_is_unsupported():
    model_cfg = make_model(tiny.get_config().model, 609).cfg
    assert attention_path(model_cfg, jnp.float32, dropout_active=True) == "xla_cpu"
    cudnn = dataclasses.replace(model_cfg, attention_implementation="cudnn")
    assert attention_path(cudnn, jnp.bfloat16, dropout_active=True) == "xla"
    threefry_blockwise = dataclasses.replace(
        model_cfg, attention_implementation="blockwise", dropout_rng="threefry"
    )
    assert attention_path(threefry_blockwise, jnp.float32, True) == "xla"
    assert attention_path(threefry_blockwise, jnp.float32, False) == "blockwise"


def test_hashed_masks_keep_the_configured_fraction_and_differ_by_seed_and_row():
    rate, rows = 0.1, jnp.arange(64, dtype=jnp.uint32)
    keep_a = np.asarray(hashed_keep_mask(jnp.uint32(1), rows, (128, 128), rate))
    keep_b = np.asarray(hashed_keep_mask(jnp.uint32(2), rows, (128, 128), rate))
    n = keep_a.size  # 1 M elements: the kept fraction is within 5 sigma of 0.9
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(keep_a.mean() - (1 - rate)) < 5 * sigma
    # Independent masks agree with probability p² + (1-p)²; per row as well as overall.
    expected_agreement = rate**2 + (1 - rate) ** 2
    assert abs((keep_a == keep_b).mean() - expected_agreement) < 5 * np.sqrt(0.2 / n)
    row_agreement = (keep_a[:-1] == keep_a[1:]).reshape(63, -1).mean(axis=1)
    assert np.all(np.abs(row_agreement - expected_agreement) < 5 * np.sqrt(0.2 / 128**2))
    # No two rows share a mask: the row seeds do not collide.
    assert len({row.tobytes() for row in keep_a.reshape(64, -1)}) == 64


def test_hashed_masks_of_a_block_of_rows_are_the_rows_of_the_whole():
    whole = hashed_keep_mask(jnp.uint32(7), jnp.arange(8, dtype=jnp.uint32), (5, 6), 0.5)
    block = hashed_keep_mask(jnp.uint32(7), jnp.array([6, 2], jnp.uint32), (5, 6), 0.5)
    np.testing.assert_array_equal(block, whole[jnp.array([6, 2])])


def test_hashed_dropout_scales_kept_elements_and_zeroes_the_rest():
    x = jnp.ones((16, 1000), jnp.float32)
    y = np.asarray(hashed_dropout(x, jnp.uint32(3), 0.25))
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation


@pytest.mark.parametrize("rng", ["hash", "threefry"])
def test_training_mode_model_is_the_same_with_blockwise_xla_cpu_or_xla_attention(rng):
    """So `model.attention_implementation` may change on resume. "threefry" masks cannot be
    regenerated by the blockwise kernel, so with them "blockwise" takes the spelled-out attention;
    "xla_cpu" runs its own kernel with either mask."""
    cfg = tiny.get_config().model
    cfg.update(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
               max_position_embeddings=L, hidden_dropout=0.1, attention_dropout=0.1, dropout_rng=rng)
    ids = np.random.default_rng(3).integers(5, 609, (B, L)).astype(np.int32)
    _, _, _, key_is_real = inputs()
    mask = np.asarray(key_is_real, np.int32)
    params = nn.unbox(make_model(cfg, 609).init(jax.random.key(0), ids, mask)["params"])

    def logits(implementation):
        cfg.attention_implementation = implementation
        return make_model(cfg, 609).apply(
            {"params": params}, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(4)}
        )

    reference = logits("xla")
    np.testing.assert_allclose(logits("blockwise"), reference, atol=1e-5)
    np.testing.assert_allclose(logits("xla_cpu"), reference, atol=1e-5)
