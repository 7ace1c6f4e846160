"""Checkpoints restore bit-identically, refuse foreign runs, and keep the last N plus the best."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grover_jax.configs import tiny
from grover_jax import parallel, train
from grover_jax.model import make_model

VOCAB = 609
TOKENIZER_SHA = "ab" * 32


def small_config():
    config = tiny.get_config()
    config.model.hidden_size = 32
    config.model.num_heads = 4
    config.model.intermediate_size = 64
    config.model.max_position_embeddings = 16
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
    return config


@pytest.fixture(scope="module")
def setup():
    config = small_config()
    mesh = parallel.make_mesh(config.mesh)
    model = make_model(config.model, VOCAB)
    tx = train.make_optimizer(config.train)
    state, _ = train.create_train_state(model, tx, mesh, seed=0)
    # Two updates so that step, Adam moments and params all differ from a fresh state.
    update = jax.jit(
        lambda st, scale: st.apply_gradients(
            grads=jax.tree.map(lambda p: scale * jnp.ones_like(p), st.params)
        )
    )
    for scale in (1.0, -0.5):
        state = update(state, scale)
    return config, mesh, model, tx, state


def test_restore_into_a_fresh_sharded_state_is_bit_identical(tmp_path, setup):
    config, mesh, model, tx, state = setup
    checkpointer = train.Checkpointer(tmp_path / "ckpt", config, TOKENIZER_SHA)
    data_state = {"epoch": 1, "cursor": 4096, "rng": 17}
    checkpointer.save(int(state.step), state, data_state)
    checkpointer.close()

    abstract = train.abstract_train_state(model, tx, mesh)
    reopened = train.Checkpointer(tmp_path / "ckpt", config, TOKENIZER_SHA)
    restored, restored_data = reopened.restore(abstract)
    assert reopened.latest_step() == 2 and int(restored.step) == 2
    assert restored_data == data_state
    assert isinstance(restored, train.TrainState)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for want, got, target in zip(
        jax.tree.leaves(state), jax.tree.leaves(restored), jax.tree.leaves(abstract), strict=True
    ):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert got.sharding == target.sharding
    reopened.close()


def test_a_different_run_is_refused_with_one_line(tmp_path, setup):
    config, mesh, model, tx, state = setup
    checkpointer = train.Checkpointer(tmp_path, config, TOKENIZER_SHA)
    checkpointer.save(2, state, {"cursor": 0})
    checkpointer.close()
    abstract = train.abstract_train_state(model, tx, mesh)

    other_run = small_config()
    other_run.data.mask_rate = 0.022
    other_run.train.learning_rate = 4e-4
    with pytest.raises(train.CheckpointMismatchError) as refused:
        train.Checkpointer(tmp_path, other_run, TOKENIZER_SHA).restore(abstract)
    message = str(refused.value)
    assert "\n" not in message
    assert "data.mask_rate: checkpoint 0.15, now 0.022" in message
    assert "train.learning_rate: checkpoint 0.001, now 0.0004" in message

    with pytest.raises(train.CheckpointMismatchError, match="tokenizer sha256"):
        train.Checkpointer(tmp_path, config, "cd" * 32).restore(abstract)

    # Cadence and memory knobs may change between runs.
    relaxed = small_config()
    relaxed.train.log_every, relaxed.model.remat, relaxed.train.grad_accum_steps = 1, True, 4
    restored, _ = train.Checkpointer(tmp_path, relaxed, TOKENIZER_SHA).restore(abstract)
    assert int(restored.step) == 2


def test_keeps_the_last_n_and_the_best_validation_loss(tmp_path, setup):
    config, _, _, _, state = setup
    checkpointer = train.Checkpointer(tmp_path, config, TOKENIZER_SHA, keep=2)
    valid_losses = {1: 3.0, 2: 1.5, 3: None, 4: 2.0, 5: None, 6: 2.5}
    for step, valid_loss in valid_losses.items():
        checkpointer.save(step, state, {"cursor": step}, valid_loss=valid_loss)
    checkpointer.wait_until_finished()
    assert checkpointer.all_steps() == [2, 5, 6]
    assert checkpointer.best_step() == 2
    checkpointer.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["2", "5", "6"]


def test_a_resume_that_changes_the_arithmetic_says_it_is_not_bit_identical(tmp_path, setup):
    config, mesh, model, tx, state = setup
    checkpointer = train.Checkpointer(tmp_path, config, TOKENIZER_SHA)
    checkpointer.save(2, state, {"cursor": 0})
    checkpointer.close()

    cadence = small_config()
    cadence.train.log_every, cadence.data.eval_batches = 1, 3  # cannot change a bit of training
    assert train.Checkpointer(tmp_path, cadence, TOKENIZER_SHA).resume_differences(2) == []

    kernel = small_config()
    kernel.model.attention_implementation = "blockwise" if config.model.attention_implementation != "blockwise" else "xla"
    kernel.train.mlm_head_on_targets = not config.train.mlm_head_on_targets
    resumed = train.Checkpointer(tmp_path, kernel, TOKENIZER_SHA)
    restored, _ = resumed.restore(train.abstract_train_state(model, tx, mesh))  # allowed ...
    assert int(restored.step) == 2
    differences = resumed.resume_differences(2)  # ... and named, with why
    assert [d.split(" ")[0] for d in differences] == ["model.attention_implementation", "train.mlm_head_on_targets"]
    assert f"{config.model.attention_implementation!r} -> {kernel.model.attention_implementation!r}" in differences[0]
    assert "1e-5" in differences[0]


def test_grad_accumulation_may_change_on_resume_only_without_dropout():
    from grover_jax.train.checkpoint import _config_json, _resume_fields

    config = small_config()
    assert "train.grad_accum_steps" not in _resume_fields(_config_json(config))  # exact: no dropout
    config.model.hidden_dropout = 0.1  # dropout keys are drawn per micro-batch
    assert "train.grad_accum_steps" in _resume_fields(_config_json(config))
