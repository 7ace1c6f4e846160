"""The device mesh ("data", "fsdp", "tensor") from `config.mesh`, and multi-process start-up."""

import math
import os
from collections.abc import Sequence

import jax
import ml_collections
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from grover_jax.configuration import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")


class MeshConfigError(ConfigError):
    """config.mesh does not fit the devices present."""


def mesh_shape(mesh_cfg: ml_collections.ConfigDict, num_devices: int) -> tuple[int, int, int]:
    """Per-slice (ICI) sizes of (data, fsdp, tensor); one of them may be -1 = the rest.

    `mesh_cfg.dcn_data` slices (or hosts) multiply the data axis on top of this shape.
    """
    dcn_data = mesh_cfg.get("dcn_data", 1)
    if dcn_data < 1 or num_devices % dcn_data:
        raise MeshConfigError(f"mesh.dcn_data={dcn_data} does not divide the {num_devices} devices")
    per_slice = num_devices // dcn_data
    sizes = [mesh_cfg.data, mesh_cfg.fsdp, mesh_cfg.tensor]
    if sizes.count(-1) > 1:
        raise MeshConfigError(f"mesh data/fsdp/tensor = {sizes}: at most one may be -1")
    if any(s == 0 or s < -1 for s in sizes):
        raise MeshConfigError(f"mesh data/fsdp/tensor = {sizes}: sizes are positive or -1")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if per_slice % known:
            raise MeshConfigError(
                f"mesh data/fsdp/tensor = {sizes}: {known} does not divide "
                f"{per_slice} devices per slice"
            )
        sizes[sizes.index(-1)] = per_slice // known
    if math.prod(sizes) != per_slice:
        raise MeshConfigError(
            f"mesh data×fsdp×tensor = {'×'.join(map(str, sizes))} = {math.prod(sizes)} "
            "but there are "
            f"{per_slice} devices per slice ({num_devices} devices, dcn_data={dcn_data})"
        )
    return sizes[0], sizes[1], sizes[2]


def make_mesh(
    mesh_cfg: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """The mesh over `devices` (default: all devices of all processes).

    Pass the devices of a `jax.experimental.topologies` description to build the mesh of a TPU
    slice this machine does not have (ahead-of-time compilation).
    """
    devices = list(jax.devices() if devices is None else devices)
    ici_shape = mesh_shape(mesh_cfg, len(devices))
    # Auto axes: shardings are propagated by the compiler from in/out shardings and logical
    # constraints (GSPMD/Shardy), not carried in the types (jax >= 0.7's default is Explicit).
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    dcn_data = mesh_cfg.get("dcn_data", 1)
    if dcn_data == 1:
        return jax.make_mesh(ici_shape, MESH_AXES, axis_types, devices=devices)
    # Data parallelism across slices/hosts: only gradients cross the slow network, once a step.
    # Multi-slice TPUs number their slices; elsewhere (GPU nodes, CPU processes) every device
    # reports slice 0, and the process is the unit that sits across the network.
    n_slices = len({getattr(d, "slice_index", 0) for d in devices})
    # Splitting physical axes lets e.g. fsdp=64 × tensor=4 lie on a 16x16 v5e slice, as
    # jax.make_mesh allows for one slice.
    device_array = mesh_utils.create_hybrid_device_mesh(
        ici_shape, (dcn_data, 1, 1), devices, process_is_granule=n_slices != dcn_data,
        allow_split_physical_axes=True,
    )
    return Mesh(device_array, MESH_AXES, axis_types=axis_types)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto_detect: bool = False,
) -> bool:
    """Join a multi-process JAX run; returns whether one was joined. Call before any other JAX use.

    Arguments left None are read from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID. With one process (the default) nothing happens. `auto_detect=True` lets JAX
    find the cluster itself (TPU pods, SLURM, Open MPI).
    """
    if coordinator_address is None:
        coordinator_address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if not auto_detect and (num_processes is None or num_processes <= 1):
        return False
    # CPU processes need a collectives library to talk to each other; accelerators ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if auto_detect:
        jax.distributed.initialize()
        return True
    if coordinator_address is None or process_id is None:
        raise MeshConfigError(
            f"{num_processes} processes requested but coordinator address or process id missing "
            "(set JAX_COORDINATOR_ADDRESS=host:port and JAX_PROCESS_ID)"
        )
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True
