"""`grover compile`: the pretraining step compiled ahead of time for real TPU topologies on this
CPU (libtpu's compiler), with per-chip memory, FLOPs and a one-line refusal when it cannot fit."""

import importlib.util
import math
import subprocess
import sys

import pytest

from grover_jax.configuration import load_config
from grover_jax.parallel.chips import peak_bf16_flops
from grover_jax.programs.compile import (
    DEFAULT_VOCAB_SIZE,
    CompileSetupError,
    compile_pretraining,
    parse_topology,
)

needs_libtpu = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="needs libtpu, the TPU compiler (pip install -e '.[tpu]'); it could not be installed here")

# fsdp=2 × tensor=2 on 4 chips, so that every sharding rule splits something.
FSDP_TENSOR = ["mesh.data=1", "mesh.fsdp=2", "mesh.tensor=2"]


@pytest.fixture(scope="module")
def v5e_report():
    """The tiny config (batch 8 × 64 tokens: seconds to compile) on a v5e-4, fsdp=2 × tensor=2."""
    return compile_pretraining(load_config("tiny", [*FSDP_TENSOR, "train.batch_size=8", "data.seq_len=64"]), "v5e:2x2")


@needs_libtpu
def test_tiny_compiles_for_v5e_2x2(v5e_report):
    report = v5e_report
    assert report.fits and report.num_chips == 4
    assert report.mesh_shape == {"data": 1, "fsdp": 2, "tensor": 2}
    assert 0 < report.total < report.topology.chip.hbm_bytes
    assert report.xla_flops_per_chip > 0 and report.tokens_per_second(0.5) > 0


@needs_libtpu
def test_tiny_compiles_for_v4_2x2x1():
    report = compile_pretraining(load_config("tiny", ["train.batch_size=8", "data.seq_len=64"]), "v4:2x2x1")
    assert report.fits and report.num_chips == 4 and report.topology.chip.name == "TPU v4"
    assert report.mesh_shape == {"data": 4, "fsdp": 1, "tensor": 1}  # the tiny config's data=-1
    assert report.xla_flops_per_chip > 0


@needs_libtpu
@pytest.mark.slow
def test_memory_grows_when_the_batch_doubles():
    """Full 512-token windows, 8 then 16 per chip: activations of ~100 MiB and more. (Smaller ones live
    in the v5e core's 128 MiB VMEM, which XLA does not count as HBM, and stay flat.) ~2 CPU-minutes."""
    small, large = (compile_pretraining(load_config("tiny", ["model.max_position_embeddings=512", "data.seq_len=512",
                                                             f"train.batch_size={batch}"]), "v5e:2x2")
                    for batch in (32, 64))
    assert large.batch == 2 * small.batch
    assert large.temporaries > 2 * small.temporaries
    assert large.total > small.total
    assert large.params == small.params and large.optimizer_state == small.optimizer_state


def _tiny_parameter_counts(config) -> dict[int, int]:
    """BERT's parameters by how many shards fsdp=2 × tensor=2 cut them into, from the config alone:
    "embed" splits over fsdp, "heads" and "mlp" over tensor, vocab/position/kv/norms never."""
    m = config.model
    d, f, v, p, layers = m.hidden_size, m.intermediate_size, DEFAULT_VOCAB_SIZE, m.max_position_embeddings, m.num_layers
    by_shards = {1: 0, 2: 0, 4: 0}
    by_shards[2] += v * d + p * d + 2 * d  # word, position, token-type embeddings [*, embed]
    by_shards[1] += 2 * d  # embedding LayerNorm
    for _ in range(layers):
        by_shards[4] += 3 * d * d  # query/key/value kernels [embed, heads, kv]
        by_shards[2] += 3 * d  # their biases [heads, kv]
        by_shards[4] += d * d  # attention output kernel [heads, kv, embed]
        by_shards[1] += d + 2 * d  # its bias, LayerNorm
        by_shards[4] += 2 * d * f  # intermediate [embed, mlp] and output [mlp, embed] kernels
        by_shards[2] += f  # intermediate bias [mlp]
        by_shards[1] += d + 2 * d  # output bias, LayerNorm
    by_shards[2] += d * d  # MLM transform kernel [embed, None]
    by_shards[1] += d + 2 * d + v  # its bias, LayerNorm, the decoder bias [vocab]
    return by_shards


@needs_libtpu
def test_per_chip_parameter_bytes_follow_the_sharding_rules(v5e_report):
    config = load_config("tiny")
    counts = _tiny_parameter_counts(config)
    expected = sum(4 * count // shards for shards, count in counts.items())  # float32 parameters
    assert v5e_report.params == expected
    # AdamW keeps two moments shaped and sharded like the parameters (plus scalar counts).
    assert v5e_report.optimizer_state - 2 * expected in range(64)


@needs_libtpu
def test_a_step_that_cannot_fit_fails_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "grover_jax.cli", "compile", "--config", "tiny", "--topology", "v5e:1x1",
         "--set", "train.batch_size=16384"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("grover: error: v5e:1x1 (TPU v5e): the step needs ")
    needed = float(lines[0].split("needs ")[1].split(" GiB")[0])
    available = float(lines[0].split(", ")[1].split(" GiB available")[0])
    assert needed > available > 10


@needs_libtpu
def test_a_batch_that_does_not_split_over_the_chips_is_refused():
    with pytest.raises(CompileSetupError, match="does not split"):
        compile_pretraining(load_config("tiny", ["train.batch_size=6"]), "v5e:2x2")


@pytest.mark.parametrize(("text", "name", "chips"), [
    ("v5e:16x16", "v5e:16x16", 256), ("v5e-256", "v5e:16x16", 256), ("v5litepod-16", "v5e:4x4", 16),
    ("v4-8", "v4:2x2x1", 4), ("v5p-128", "v5p:4x4x4", 64), ("v6e-8", "v6e:2x4", 8),
])
def test_topology_names_and_accelerator_types(text, name, chips):
    topology = parse_topology(text)
    assert topology.name == name and topology.num_chips == chips
    assert math.prod(int(n) for n in topology.shape.split("x")) == chips


@pytest.mark.parametrize(("text", "device_kind", "tflops"), [
    ("v4-8", "TPU v4", 275), ("v5e-4", "TPU v5 lite", 197), ("v5p-8", "TPU v5p", 459), ("v6e-4", "TPU v6 lite", 918),
])
def test_a_chip_has_one_peak_for_compile_and_for_mfu(text, device_kind, tflops):
    # JAX names a v5e "TPU v5 lite": it must not match the v5p's "TPU v5", which contains it.
    assert parse_topology(text).chip.peak_bf16_flops == peak_bf16_flops(device_kind) == tflops * 1e12


def test_without_libtpu_compile_says_how_to_install_it(monkeypatch):
    from grover_jax.programs import compile as compile_program

    monkeypatch.setattr(compile_program.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CompileSetupError, match=r'pip install -e "\.\[tpu\]"'):
        compile_program.topology_devices(parse_topology("v5e:2x2"))


@needs_libtpu
def test_two_slices_put_the_data_axis_across_them():
    report = compile_pretraining(load_config("tiny", [*FSDP_TENSOR, "train.batch_size=8", "data.seq_len=64"]),
                                 "v5e:2x2", num_slices=2)
    assert report.num_chips == 8 and report.fits
    assert report.mesh_shape == {"data": 2, "fsdp": 2, "tensor": 2}
