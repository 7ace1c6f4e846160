"""Mesh, logical-axis rules, shardings of states and batches, multi-process start-up."""

from grover_jax.parallel.mesh import (
    MESH_AXES,
    MeshConfigError,
    initialize_distributed,
    make_mesh,
    mesh_shape,
)
from grover_jax.parallel.rules import (
    LOGICAL_AXIS_RULES,
    activation_sharding,
    batch_sharding,
    logical_sharding,
    replicated,
    shard_batch,
    with_shardings,
)

__all__ = [
    "LOGICAL_AXIS_RULES",
    "MESH_AXES",
    "MeshConfigError",
    "activation_sharding",
    "batch_sharding",
    "initialize_distributed",
    "logical_sharding",
    "make_mesh",
    "mesh_shape",
    "replicated",
    "shard_batch",
    "with_shardings",
]
