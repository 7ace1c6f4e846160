"""Two pretraining steps of a small BERT on a fixed batch, on the devices/processes it is given.

Run as a subprocess by tests/test_parallel.py, because the number of (fake CPU) devices and the
multi-process setup must be fixed before JAX initialises:

    python tests/parallel_worker.py OUT.npz CKPT_DIR --devices 8 --mesh 2,2,2
    python tests/parallel_worker.py OUT.npz CKPT_DIR --devices 4 --mesh 1,2,2 \
        --dcn-data 2 --coordinator 127.0.0.1:PORT --num-processes 2 --process-id 0

Writes the metrics of both steps, the parameters after them (gathered to every process), and
whether a checkpoint of the sharded state restored bit-identically into the same shardings.
"""

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("checkpoint_dir")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--mesh", default="1,1,1", help="data,fsdp,tensor within a slice")
    parser.add_argument("--dcn-data", type=int, default=1, help="slices (here: processes)")
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.0, help="hidden and attention dropout")
    args = parser.parse_args()
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    from grover_jax.configs import tiny
    from grover_jax import parallel, train
    from grover_jax.model import make_model

    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    config = tiny.get_config()
    config.model.hidden_size = 32
    config.model.num_heads = 4
    config.model.intermediate_size = 64
    config.model.max_position_embeddings = 16
    config.train.warmup_steps = 0  # a non-zero learning rate from the first step
    config.train.grad_accum_steps = 2
    config.model.hidden_dropout = config.model.attention_dropout = args.dropout
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = map(int, args.mesh.split(","))
    config.mesh.dcn_data = args.dcn_data

    mesh = parallel.make_mesh(config.mesh)
    model = make_model(config.model, 609)
    state, state_sharding = train.create_train_state(
        model, train.make_optimizer(config.train), mesh, seed=0
    )
    step = train.compile_train_step(config.train, config.model, mesh, state_sharding)

    rng = np.random.default_rng(0)
    batch_size, length = 8, 16
    lengths = rng.integers(6, length + 1, batch_size)
    attention_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    global_batch = {
        "input_ids": (rng.integers(5, 609, (batch_size, length)) * attention_mask).astype(np.int32),
        "attention_mask": attention_mask,
        "mlm_labels": rng.integers(5, 609, (batch_size, length)).astype(np.int32),
        "mlm_weights": ((rng.random((batch_size, length)) < 0.3) * attention_mask).astype(
            np.float32
        ),
    }
    # Each process feeds its own contiguous share of the global batch.
    share = batch_size // jax.process_count()
    rows = slice(jax.process_index() * share, (jax.process_index() + 1) * share)
    batch = parallel.shard_batch({k: v[rows] for k, v in global_batch.items()}, mesh)

    base_rng = np.asarray(jax.random.PRNGKey(config.seed))
    metrics = []
    for _ in range(2):
        state, step_metrics = step(state, batch, base_rng)
        metrics.append({k: float(v) for k, v in jax.device_get(step_metrics).items()})
    params = multihost_utils.process_allgather(state.params, tiled=True)
    flat = {
        jax.tree_util.keystr(path): np.asarray(x)
        for path, x in jax.tree_util.tree_leaves_with_path(params)
    }

    # The sharded state survives an orbax round trip written by all processes together.
    checkpointer = train.Checkpointer(args.checkpoint_dir, config, tokenizer_sha256="0" * 64)
    checkpointer.save(2, state, {"cursor": 2})
    checkpointer.wait_until_finished()
    abstract = train.abstract_train_state(model, train.make_optimizer(config.train), mesh)
    restored, _ = checkpointer.restore(abstract)
    checkpointer.close()
    restored_leaves = multihost_utils.process_allgather(jax.tree.leaves(restored), tiled=True)
    state_leaves = multihost_utils.process_allgather(jax.tree.leaves(state), tiled=True)
    restore_identical = all(
        np.array_equal(a, b) for a, b in zip(restored_leaves, state_leaves, strict=True)
    ) and all(
        r.sharding == a.sharding
        for r, a in zip(jax.tree.leaves(restored), jax.tree.leaves(abstract), strict=True)
    )
    if jax.process_index() == 0:
        np.savez(
            args.out,
            loss=[m["loss"] for m in metrics],
            grad_norm=[m["grad_norm"] for m in metrics],
            n_targets=[m["n_targets"] for m in metrics],
            num_devices=jax.device_count(),
            restore_identical=restore_identical,
            **{f"param{key}": value for key, value in flat.items()},
        )


if __name__ == "__main__":
    main()
