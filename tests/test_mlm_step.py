"""The masked-token step: exact accumulation, padding-blind loss, and it learns."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from grover_jax.configs import tiny
from grover_jax import parallel, train
from grover_jax.model import make_model

VOCAB = 609



@pytest.fixture(autouse=True)
def _no_implicit_rank_promotion():
    """The model code must broadcast explicitly; scoped to this module's tests (a global switch
    would also bind every test collected after it)."""
    with jax.numpy_rank_promotion("raise"):
        yield


def small_config(grad_accum_steps: int = 1):
    config = tiny.get_config()
    config.model.hidden_size = 32
    config.model.num_heads = 4
    config.model.intermediate_size = 64
    config.model.max_position_embeddings = 16
    config.train.warmup_steps = 0
    config.train.grad_accum_steps = grad_accum_steps
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
    return config


def random_batch(seed: int = 0, batch_size: int = 8, length: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, length + 1, batch_size)
    attention_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    # Even rows carry many targets, odd rows few: the two strided micro-batches get very
    # different target counts, which is where averaging per-micro-batch means would go wrong.
    target_rate = np.where(np.arange(batch_size) % 2 == 0, 0.6, 0.1)[:, None]
    weights = (rng.random((batch_size, length)) < target_rate) * attention_mask
    return {
        "input_ids": (rng.integers(5, VOCAB, (batch_size, length)) * attention_mask).astype(
            np.int32
        ),
        "attention_mask": attention_mask,
        "mlm_labels": rng.integers(5, VOCAB, (batch_size, length)).astype(np.int32),
        "mlm_weights": weights.astype(np.float32),
    }


def one_step(config, batch):
    mesh = parallel.make_mesh(config.mesh)
    model = make_model(config.model, VOCAB)
    state, sharding = train.create_train_state(
        model, train.make_optimizer(config.train), mesh, seed=0
    )
    step = train.compile_train_step(config.train, config.model, mesh, sharding)
    state, metrics = step(
        state, parallel.shard_batch(batch, mesh), np.asarray(jax.random.PRNGKey(0))
    )
    return jax.device_get(state.params), jax.device_get(metrics)


def test_two_micro_batches_update_exactly_like_the_whole_batch():
    batch = random_batch()
    weights = batch["mlm_weights"]
    assert weights[0::2].sum() > 3 * weights[1::2].sum()
    params_big, metrics_big = one_step(small_config(grad_accum_steps=1), batch)
    params_acc, metrics_acc = one_step(small_config(grad_accum_steps=2), batch)
    assert metrics_acc["n_targets"] == metrics_big["n_targets"] == weights.sum()
    for key in ("loss", "accuracy", "grad_norm", "learning_rate"):
        np.testing.assert_allclose(metrics_acc[key], metrics_big[key], rtol=1e-6, err_msg=key)
    for a, b in zip(jax.tree.leaves(params_acc), jax.tree.leaves(params_big), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_padding_and_non_target_labels_never_enter_loss_or_gradients():
    config = small_config()
    model = make_model(config.model, VOCAB)
    batch = random_batch(seed=1)
    params = nn.unbox(
        model.init(jax.random.key(0), batch["input_ids"], batch["attention_mask"])["params"]
    )
    changed = dict(batch)
    not_target = batch["mlm_weights"] == 0
    padding = batch["attention_mask"] == 0
    # Garbage where nothing may be read: out-of-range labels off target, other tokens in padding.
    changed["mlm_labels"] = np.where(not_target, -100, batch["mlm_labels"]).astype(np.int32)
    changed["input_ids"] = np.where(padding, 7, batch["input_ids"]).astype(np.int32)
    assert not_target.any() and padding.any()

    grad_fn = jax.jit(jax.value_and_grad(train.loss_fn, has_aux=True), static_argnums=1)
    (_, sums), grads = grad_fn(params, model.apply, batch, None)
    (_, sums_changed), grads_changed = grad_fn(params, model.apply, changed, None)
    for key in sums:
        np.testing.assert_allclose(sums_changed[key], sums[key], rtol=1e-6, err_msg=key)
    assert np.isfinite(sums_changed["loss_sum"])
    for a, b in zip(jax.tree.leaves(grads_changed), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_loss_falls_when_training_on_one_fixed_batch():
    config = small_config()
    config.train.learning_rate = 3e-3
    mesh = parallel.make_mesh(config.mesh)
    model = make_model(config.model, VOCAB)
    tx = train.make_optimizer(config.train)
    state, sharding = train.create_train_state(model, tx, mesh, seed=0)
    batch = parallel.shard_batch(random_batch(seed=2), mesh)
    rng = np.asarray(jax.random.PRNGKey(0))
    # Compiled ahead of time from shapes and shardings only, as `grover compile` does for TPUs.
    abstract_batch = parallel.with_shardings(
        jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch),
        jax.tree.map(lambda _: parallel.batch_sharding(mesh), batch),
    )
    step = (
        train.compile_train_step(config.train, config.model, mesh, sharding)
        .lower(
            train.abstract_train_state(model, tx, mesh),
            abstract_batch,
            jax.ShapeDtypeStruct((2,), np.uint32),
        )
        .compile()
    )
    losses = []
    for _ in range(30):
        state, metrics = step(state, batch, rng)
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 30
    # Memorising ~40 targets among 609 classes: from ln(609) ≈ 6.4 towards 0.
    assert losses[0] > 6.0
    assert losses[-1] < 0.5 * losses[0]


def test_eval_step_sums_add_up_over_batches():
    config = small_config()
    model = make_model(config.model, VOCAB)
    batch = random_batch(seed=3)
    params = nn.unbox(
        model.init(jax.random.key(0), batch["input_ids"], batch["attention_mask"])["params"]
    )
    mesh = parallel.make_mesh(config.mesh)
    params_sharding = jax.tree.map(lambda _: parallel.replicated(mesh), params)
    evaluate = train.compile_eval_step(model.apply, mesh, params_sharding)
    whole = evaluate(params, batch)
    halves = [
        evaluate(params, {k: v[rows] for k, v in batch.items()})
        for rows in (slice(0, 4), slice(4, 8))
    ]
    for key in whole:
        np.testing.assert_allclose(
            halves[0][key] + halves[1][key], whole[key], rtol=1e-5, err_msg=key
        )


def test_schedule_warms_up_linearly_then_decays_to_zero():
    config = tiny.get_config().train
    config.learning_rate, config.warmup_steps, config.num_steps = 1e-3, 10, 110
    linear = train.learning_rate_schedule(config)
    assert [float(linear(s)) for s in (0, 5, 10, 60, 110)] == pytest.approx(
        [0, 5e-4, 1e-3, 5e-4, 0], abs=1e-9
    )
    config.decay = "cosine"
    cosine = train.learning_rate_schedule(config)
    assert [float(cosine(s)) for s in (5, 10, 60, 110)] == pytest.approx(
        [5e-4, 1e-3, 5e-4, 0], abs=1e-9
    )


def test_weight_decay_skips_biases_and_layer_norms():
    model = make_model(small_config().model, VOCAB)
    ids = np.zeros((1, 4), np.int32)
    mask = train.weight_decay_mask(model.init(jax.random.key(0), ids, ids + 1)["params"])
    decayed = {
        jax.tree_util.keystr(path): value
        for path, value in jax.tree_util.tree_leaves_with_path(nn.unbox(mask))
    }
    assert decayed["['bert']['encoder']['layer']['0']['attention']['self']['query']['kernel']"]
    assert decayed["['bert']['embeddings']['word_embeddings']['embedding']"]
    assert not decayed["['bert']['encoder']['layer']['0']['attention']['self']['query']['bias']"]
    assert not decayed["['bert']['embeddings']['LayerNorm']['scale']"]
    assert not decayed["['cls']['predictions']['bias']"]


def test_flops_per_token_counts_every_matmul_parameter():
    config = small_config()
    model = make_model(config.model, VOCAB)
    ids = np.zeros((1, 4), np.int32)
    params = nn.unbox(model.init(jax.random.key(0), ids, ids + 1)["params"])
    kernels = sum(
        x.size
        for path, x in jax.tree_util.tree_leaves_with_path(params)
        if path[-1].key == "kernel"
    )
    tied_decoder = VOCAB * config.model.hidden_size
    attention = 12 * config.model.num_layers * config.model.hidden_size * 16
    expected = 6 * (kernels + tied_decoder) + attention
    assert train.model_flops_per_token(config.model, VOCAB, seq_len=16) == expected


def test_flops_per_token_count_the_head_where_it_runs():
    config = small_config()
    every = train.model_flops_per_token(config.model, VOCAB, seq_len=16)
    quarter = train.model_flops_per_token(config.model, VOCAB, seq_len=16, head_positions=4)
    head = config.model.hidden_size * (config.model.hidden_size + VOCAB)
    np.testing.assert_allclose(every - quarter, 6 * head * 0.75)


@pytest.mark.parametrize("targets_per_row", [12, 3])
def test_head_on_gathered_targets_gives_the_loss_and_gradients_of_the_head_everywhere(
    targets_per_row,
):
    """12 slots hold every row's targets; with 3 the busiest rows overflow and the step must fall
    back to the all-positions head rather than leave targets out."""
    config = small_config()
    model = make_model(config.model, VOCAB)
    batch = random_batch(seed=2)
    most = int((batch["mlm_weights"] > 0).sum(axis=1).max())
    assert (most <= 12) and (most > 3)
    params = nn.unbox(
        model.init(jax.random.key(0), batch["input_ids"], batch["attention_mask"])["params"]
    )
    grad_fn = jax.jit(jax.value_and_grad(train.loss_fn, has_aux=True), static_argnums=(1, 4))
    (_, everywhere), grads = grad_fn(params, model.apply, batch, None, 0)
    (_, gathered), grads_gathered = grad_fn(params, model.apply, batch, None, targets_per_row)
    assert gathered["n_targets"] == everywhere["n_targets"] == batch["mlm_weights"].sum()
    for key in everywhere:
        np.testing.assert_allclose(gathered[key], everywhere[key], rtol=1e-5, err_msg=key)
    for a, b in zip(jax.tree.leaves(grads_gathered), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_targets_per_row_bound_covers_the_binomial_tail():
    config = tiny.get_config()
    config.data.seq_len, config.data.mask_rate = 512, 0.15
    bound = train.mlm_targets_per_row(config.data)
    assert 76 < bound < 512 // 3  # mean 76.5: most of the head's work is saved
    draws = np.random.default_rng(0).binomial(510, 0.15, 200_000)
    assert draws.max() <= bound
    config.data.seq_len, config.data.mask_rate = 16, 0.5
    assert train.mlm_targets_per_row(config.data) == 16  # never more slots than positions
