"""`grover compile`: compile the pretraining step ahead of time for a TPU slice this machine does
not have, and say whether it fits and how fast it should run.

With libtpu installed (`pip install -e ".[tpu]"`), `jax.experimental.topologies` describes the
devices of any TPU slice (`v5e:16x16` is a v5e-256) without holding one, and XLA's TPU compiler
builds the real executable for them. This lowers the very step `grover pretrain` runs
(`programs.pretrain.pretraining_program` + `train.compile_train_step`, same mesh rules, same
shardings, same donation), so a sharding error or an out-of-memory shows up here in minutes on a
CPU, not after a slice has been provisioned (MaxText's `train_compile.py` does the same).
"""

import dataclasses
import glob
import importlib.util
import math
import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from grover_jax.errors import GroverError
from grover_jax.parallel import MESH_AXES, MeshConfigError, batch_sharding, replicated
from grover_jax.parallel.chips import PEAK_BF16_FLOPS
from grover_jax.parallel.rules import batch_shards
from grover_jax.train import (
    abstract_train_state,
    compile_train_step,
    mlm_head_positions,
    model_flops_per_token,
)

GiB = 1024**3

# GROVER's vocabulary: 600 BPE cycles + A, C, G, T + 5 special tokens (BENCHMARKS.md, chr20 run).
DEFAULT_VOCAB_SIZE = 609


class CompileSetupError(GroverError):
    """The topology, the mesh or the batch cannot describe a run (or libtpu is missing)."""


class StepDoesNotFitError(GroverError):
    """The compiled step needs more HBM per chip than the chip has."""

    def __init__(self, message: str, needed_bytes: float, available_bytes: float, what: str = ""):
        super().__init__(message)
        self.needed_bytes, self.available_bytes, self.what = needed_bytes, available_bytes, what


@dataclasses.dataclass(frozen=True)
class TpuChip:
    name: str  # as in parallel/chips.py's table
    hbm_bytes: int
    cores_per_chip: int  # TensorCores: v4/v5p accelerator types count them, v5e/v6e count chips
    dims: int  # 3D torus (v4, v5p) or 2D (v5e, v6e)

    @property
    def peak_bf16_flops(self) -> float:  # dense, per chip
        return PEAK_BF16_FLOPS[self.name]


# Per chip, from Google Cloud's TPU system-architecture pages (cloud.google.com/tpu/docs/v4,
# /v5e, /v5p, /v6e), "HBM capacity"; their peak bf16 compute is in parallel/chips.py.
TPU_CHIPS: dict[str, TpuChip] = {
    "v4": TpuChip("TPU v4", 32 * GiB, 2, 3),
    "v5e": TpuChip("TPU v5e", 16 * GiB, 1, 2),
    "v5p": TpuChip("TPU v5p", 95 * GiB, 2, 3),
    "v6e": TpuChip("TPU v6e", 32 * GiB, 1, 2),
}
# Cloud accelerator-type prefixes (`gcloud ... --accelerator-type v5litepod-16`).
_GENERATION_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6lite": "v6e"}
# Slice shapes of the standard accelerator types, by number of chips (Cloud TPU docs' tables).
_SHAPES_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
              256: "4x8x8", 512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16"}
_SHAPES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
              256: "16x16"}


@dataclasses.dataclass(frozen=True)
class Topology:
    generation: str  # "v5e"
    shape: str  # "16x16"

    @property
    def name(self) -> str:  # libtpu's topology name
        return f"{self.generation}:{self.shape}"

    @property
    def chip(self) -> TpuChip:
        return TPU_CHIPS[self.generation]

    @property
    def num_chips(self) -> int:
        return math.prod(int(n) for n in self.shape.split("x"))


def parse_topology(text: str) -> Topology:
    """`v5e:16x16` (libtpu's name: generation and chip grid) or a Cloud accelerator type
    (`v5e-256`, `v5litepod-16`, `v4-8`, `v5p-128`; v4/v5p count TensorCores, two per chip)."""
    text = text.strip().lower()
    if ":" in text:
        generation, _, shape = text.partition(":")
    else:
        generation, _, count = text.rpartition("-")
        if not count.isdigit():
            raise CompileSetupError(
                f"--topology {text!r}: use a TPU topology like v5e:16x16 or an accelerator type like v5e-256")
    generation = _GENERATION_ALIASES.get(generation, generation)
    if generation not in TPU_CHIPS:
        raise CompileSetupError(f"--topology {text!r}: unknown TPU generation {generation!r} "
                                f"(known: {', '.join(TPU_CHIPS)})")
    chip = TPU_CHIPS[generation]
    if ":" not in text:
        shapes = _SHAPES_3D if chip.dims == 3 else _SHAPES_2D
        chips, odd_cores = divmod(int(count), chip.cores_per_chip)
        if odd_cores or chips not in shapes:
            raise CompileSetupError(f"--topology {text!r}: no standard {generation} slice of that size "
                                    f"(give the chip grid instead, e.g. {generation}:{'x'.join(['2'] * chip.dims)})")
        shape = shapes[chips]
    if not re.fullmatch(rf"[1-9]\d*(x[1-9]\d*){{{chip.dims - 1}}}", shape):
        raise CompileSetupError(f"--topology {text!r}: a {generation} slice is a {chip.dims}-D chip grid, "
                                f"e.g. {generation}:{'x'.join(['2'] * chip.dims)}")
    return Topology(generation, shape)


def _require_libtpu() -> None:
    if importlib.util.find_spec("libtpu") is None:
        raise CompileSetupError(
            "grover compile needs the TPU compiler (libtpu): pip install -e \".[tpu]\" "
            f"(or pip install \"jax[tpu]=={jax.__version__}\")")


def topology_devices(topology: Topology, num_slices: int = 1) -> list:
    """The devices of `num_slices` slices of `topology`, described by libtpu (no TPU needed)."""
    _require_libtpu()
    # This process only compiles: it must not claim a local TPU (a TPU VM's, before training
    # starts) nor be refused by libtpu's one-process lock while another JAX process holds it.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    if not glob.glob("/dev/accel*") and not glob.glob("/dev/vfio/[0-9]*"):
        # No TPU here: tell libtpu this is a lone host, else it logs errors looking for the
        # slice's other workers (the topology described below is unaffected).
        os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
        os.environ.setdefault("TPU_HOST_BOUNDS", "1,1,1")
    if not os.environ.get("JAX_PLATFORMS"):
        jax.config.update("jax_platforms", "cpu")
    from jax.experimental import topologies

    # v4 and v5p chips have two TensorCores that JAX drives as one device ("megacore").
    chip_config = {"chip_config_name": "megacore"} if topology.chip.cores_per_chip == 2 else {}
    # A host drives up to 2x2 chips; a smaller slice (v5e:1x1) is one smaller host.
    grid = [int(n) for n in topology.shape.split("x")]
    host_bounds = [min(grid[0], 2), min(grid[1], 2), 1]
    try:
        description = topologies.get_topology_desc(
            topology_name=topology.name, platform="tpu", num_slices=num_slices,
            chips_per_host_bounds=host_bounds, **chip_config)
    except (RuntimeError, ValueError) as error:  # libtpu's, without a class of their own
        raise CompileSetupError(f"--topology {topology.name}: libtpu cannot describe it "
                                f"({str(error).splitlines()[0]})") from None
    return list(description.devices)


def abstract_batch(batch_size: int, seq_len: int, mesh: jax.sharding.Mesh) -> dict[str, jax.ShapeDtypeStruct]:
    """The pretraining batch's shapes, dtypes and sharding (contract in `train/mlm_step.py`)."""
    sharding = batch_sharding(mesh)
    dtypes = {"input_ids": jnp.int32, "attention_mask": jnp.int32, "mlm_labels": jnp.int32,
              "mlm_weights": jnp.float32}
    return {name: jax.ShapeDtypeStruct((batch_size, seq_len), dtype, sharding=sharding)
            for name, dtype in dtypes.items()}


def per_chip_bytes(abstract_tree) -> int:
    """Bytes one chip holds of a tree of sharded ShapeDtypeStructs (the largest shard)."""
    return sum(math.prod(leaf.sharding.shard_shape(leaf.shape)) * np.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(abstract_tree))


@dataclasses.dataclass(frozen=True)
class CompileReport:
    topology: Topology
    num_slices: int
    mesh_shape: dict[str, int]
    global_batch: int
    seq_len: int
    # Per chip, bytes:
    params: int
    optimizer_state: int
    batch: int
    temporaries: int
    program: int
    total: int
    # Per step:
    xla_flops_per_chip: float  # what the compiled program computes (XLA cost analysis)
    model_flops: float  # 6 × matmul parameters + attention, all chips (MFU's numerator)

    @property
    def num_chips(self) -> int:
        return self.topology.num_chips * self.num_slices

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len

    @property
    def fits(self) -> bool:
        return self.total <= self.topology.chip.hbm_bytes

    def step_seconds_at_peak(self) -> float:
        return self.xla_flops_per_chip / self.topology.chip.peak_bf16_flops

    def tokens_per_second(self, mfu: float) -> float:
        """Throughput if the model's FLOPs run at `mfu` of every chip's bf16 peak."""
        return self.tokens_per_step * mfu * self.topology.chip.peak_bf16_flops * self.num_chips / self.model_flops

    def summary(self, mfu: float) -> str:
        chip = self.topology.chip
        slices = f" × {self.num_slices} slices" if self.num_slices > 1 else ""
        mesh = " ".join(f"{axis}={size}" for axis, size in self.mesh_shape.items())
        peak_seconds = self.step_seconds_at_peak()
        mfu_tokens = self.tokens_per_second(mfu)
        verdict = "fits" if self.fits else "DOES NOT FIT"
        return "\n".join([
            (f"{self.topology.name}{slices}: {self.num_chips} × {chip.name} ({chip.hbm_bytes / GiB:.1f} GiB HBM, "
             f"{chip.peak_bf16_flops / 1e12:.0f} TFLOP/s bf16 per chip; Google Cloud TPU docs)"),
            f"mesh {mesh}; global batch {self.global_batch} × {self.seq_len} tokens",
            "per chip:",
            f"  parameters       {_gib(self.params)}",
            f"  optimizer state  {_gib(self.optimizer_state)}",
            f"  batch            {_gib(self.batch)}",
            f"  temporaries      {_gib(self.temporaries)}",
            f"  program          {_gib(self.program)}",
            (f"  total            {_gib(self.total)} of {_gib(chip.hbm_bytes)} "
             f"({100 * self.total / chip.hbm_bytes:.0f} %): {verdict}"),
            (f"FLOPs per step: {self.xla_flops_per_chip:.3e} per chip (XLA cost analysis), "
             f"{self.model_flops:.3e} model FLOPs over all chips"),
            (f"at peak bf16: {1e3 * peak_seconds:.1f} ms/step, "
             f"{self.tokens_per_step / peak_seconds:,.0f} tokens/s"),
            (f"at {100 * mfu:.0f} % MFU: {1e3 * self.tokens_per_step / mfu_tokens:.1f} ms/step, "
             f"{mfu_tokens:,.0f} tokens/s"),
        ])


def _gib(n: int) -> str:
    return f"{n / GiB:8.3f} GiB" if n >= GiB else f"{n / 1024**2:8.1f} MiB"


# XLA TPU's out-of-memory messages, e.g. "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total
# memory required for HLO temporaries (141.04G) exceeds available HBM (30.75G)." or "Used 23.41G of
# 15.75G hbm. Exceeded hbm capacity by 7.66G."
_XLA_OOM = (re.compile(r"required for (?P<what>[\w ]+?) \((?P<needed>[\d.]+[KMGT]?)\) exceeds available HBM "
                       r"\((?P<available>[\d.]+[KMGT]?)\)"),
            re.compile(r"Used (?P<needed>[\d.]+[KMGT]?) of (?P<available>[\d.]+[KMGT]?) hbm"))
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _xla_bytes(text: str) -> float:
    return float(text.rstrip("KMGT")) * _UNITS.get(text[-1], 1)


def _does_not_fit(topology: Topology, num_slices: int, needed: float, available: float,
                  what: str = "") -> StepDoesNotFitError:
    slices = f" × {num_slices}" if num_slices > 1 else ""
    return StepDoesNotFitError(
        f"{topology.name}{slices} ({topology.chip.name}): the step needs {needed / GiB:.2f} GiB per chip"
        f"{f' for {what} alone' if what else ''}, {available / GiB:.2f} GiB available (lower train.batch_size, "
        "raise train.grad_accum_steps or shard more: mesh.fsdp, mesh.tensor)", needed, available, what)


def compile_pretraining(config: ml_collections.ConfigDict, topology: Topology | str, num_slices: int = 1,
                        vocab_size: int = 0) -> CompileReport:
    """Compile `grover pretrain`'s step for `num_slices` slices of `topology`; raise
    StepDoesNotFitError (one line) if a chip's HBM cannot hold it."""
    from grover_jax.programs.pretrain import pretraining_program

    topology = parse_topology(topology) if isinstance(topology, str) else topology
    if num_slices < 1:
        raise CompileSetupError(f"--slices {num_slices}: at least 1")
    config = ml_collections.ConfigDict(config.to_dict())
    vocab_size = vocab_size or config.model.vocab_size or DEFAULT_VOCAB_SIZE
    config.model.vocab_size = vocab_size
    if config.model.get("attention_implementation", "auto") == "auto":
        # "auto" resolves by the platform this process runs on (a CPU here), not the target.
        config.model.attention_implementation = "xla"
    if num_slices > 1:
        # Only data parallelism crosses the slow network between slices (once per step).
        config.mesh.dcn_data = num_slices
    devices = topology_devices(topology, num_slices)
    try:
        mesh, model, optimizer, state_sharding = pretraining_program(config, vocab_size, devices)
    except (MeshConfigError, NotImplementedError, ValueError) as error:  # no mesh of that shape on the slice
        raise CompileSetupError(f"{topology.name}: {str(error).splitlines()[0]}") from None
    n_batch_shards = batch_shards(mesh)
    batch_size, seq_len = config.train.batch_size, config.data.seq_len
    if batch_size % (n_batch_shards * config.train.grad_accum_steps):
        micro = f" × {config.train.grad_accum_steps} micro-batches" if config.train.grad_accum_steps > 1 else ""
        raise CompileSetupError(
            f"train.batch_size {batch_size} does not split over the {n_batch_shards} data×fsdp shards{micro} of mesh "
            f"{' '.join(f'{a}={mesh.shape[a]}' for a in MESH_AXES)} (use mesh.tensor, or a larger batch)")

    state = abstract_train_state(model, optimizer, mesh)
    batch = abstract_batch(batch_size, seq_len, mesh)
    rng = jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=replicated(mesh))
    train_step = compile_train_step(config.train, config.model, mesh, state_sharding, config.data)
    lowered = train_step.lower(state, batch, rng)
    try:
        compiled = lowered.compile()
    except jax.errors.JaxRuntimeError as error:  # XLA's out-of-memory has no class of its own
        found = next(filter(None, (pattern.search(str(error)) for pattern in _XLA_OOM)), None)
        if found is None:
            raise
        raise _does_not_fit(topology, num_slices, _xla_bytes(found["needed"]), _xla_bytes(found["available"]),
                            found.groupdict().get("what", "")) from None

    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    # The state is donated: its buffers are the new state's, so count them once.
    total = (memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
             + memory.temp_size_in_bytes + memory.generated_code_size_in_bytes)
    report = CompileReport(
        topology=topology, num_slices=num_slices, mesh_shape=dict(mesh.shape), global_batch=batch_size,
        seq_len=seq_len, params=per_chip_bytes(state.params),
        optimizer_state=per_chip_bytes(state.opt_state), batch=per_chip_bytes(batch),
        temporaries=memory.temp_size_in_bytes, program=memory.generated_code_size_in_bytes, total=total,
        xla_flops_per_chip=float(cost.get("flops", 0.0)),
        model_flops=model_flops_per_token(
            config.model, vocab_size, seq_len, mlm_head_positions(config.train, config.data)
        ) * batch_size * seq_len,
    )
    if not report.fits:
        raise _does_not_fit(topology, num_slices, total, topology.chip.hbm_bytes)
    return report
