"""The one logical→mesh rules table, and the shardings of states and batches derived from it."""

import contextlib
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Order matters: flax gives each mesh axis to the first rule that claims it within one array.
# Activations [batch, length, embed] therefore shard batch over data+fsdp and leave embed whole,
# while parameters (no batch axis) shard embed over fsdp (ZeRO-3 style).
# vocab stays replicated: GROVER's ~600 tokens make a 0.5 M-entry table (too small to be worth a
# collective), and a vocabulary of 609 is not divisible by any tensor size. kv (head_dim),
# length and position are never split: attention needs whole heads and whole windows.
LOGICAL_AXIS_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", None),
    ("length", None),
    ("position", None),
)


def logical_sharding(abstract_tree: Any, mesh: Mesh) -> Any:
    """NamedShardings for a tree whose leaves may be `nn.Partitioned` (boxed params, TrainState).

    Unboxed leaves (step counters, optimizer scalars) are replicated.
    """
    logical_specs = nn.get_partition_spec(abstract_tree)
    return nn.logical_to_mesh_sharding(logical_specs, mesh, LOGICAL_AXIS_RULES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (example) axis of every batch array over data+fsdp, replicate the rest."""
    batch_axes = nn.logical_to_mesh_axes(("batch",), LOGICAL_AXIS_RULES)
    return NamedSharding(mesh, batch_axes)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def with_shardings(abstract_tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying their shardings: the argument of `.lower()` and of a restore."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_tree, shardings
    )


@contextlib.contextmanager
def activation_sharding(mesh: Mesh) -> Iterator[None]:
    """Make the model's `nn.with_logical_constraint`s bind to `mesh`; usable inside `jax.jit`.

    Outside this context those constraints are no-ops (single device, tests).
    """
    with (
        jax.sharding.use_abstract_mesh(mesh.abstract_mesh),
        nn.logical_axis_rules(LOGICAL_AXIS_RULES),
    ):
        yield


def batch_shards(mesh: Mesh | None = None) -> int:
    """How many ways `mesh` (default: the one in context, `activation_sharding`) splits the batch
    axis; 1 outside any mesh."""
    mesh = mesh if mesh is not None else jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty:
        return 1
    axes = nn.logical_to_mesh_axes(("batch",), LOGICAL_AXIS_RULES)[0] or ()
    axes = (axes,) if isinstance(axes, str) else axes
    return int(np.prod([dict(mesh.shape)[axis] for axis in axes]))


def strided_blocks(x: jax.Array, n_blocks: int, blocks_name: str = "blocks") -> jax.Array:
    """[B, …] → [n_blocks, B / n_blocks, …], block i = rows i, i + n_blocks, …

    Strided rows keep every block spread over all data/fsdp shards (a contiguous split would put
    block 0 on the first devices only). Used for gradient-accumulation micro-batches and for
    the blockwise attention's blocks.
    """
    if x.shape[0] % n_blocks:
        raise ValueError(f"batch of {x.shape[0]} rows does not split into {n_blocks} {blocks_name}")
    x = x.reshape(x.shape[0] // n_blocks, n_blocks, *x.shape[1:]).swapaxes(0, 1)
    return nn.with_logical_constraint(x, (None, "batch") + (None,) * (x.ndim - 2))


def from_strided_blocks(x: jax.Array) -> jax.Array:
    """The inverse of `strided_blocks`."""
    return x.swapaxes(0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def shard_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows → one global array per key, split over data+fsdp.

    Every process passes its own equal share of the global batch (in process-index order); on a
    single process this is simply a sharded device_put.
    """
    sharding = batch_sharding(mesh)
    return {
        name: jax.make_array_from_process_local_data(sharding, np.asarray(array))
        for name, array in local_batch.items()
    }
