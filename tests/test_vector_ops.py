"""The two machine operations of the merge pass (`tokenizer/vector_ops.py`): what they compute, and when
the pass takes vector compaction."""

import os
import subprocess
import sys

import llvmlite.binding as llvm
import numba as nb
import numpy as np
import pytest

from grover_jax.tokenizer.vector_ops import compress_block, popcount


@nb.njit
def _compress(tokens, at, write, z, merged, kept):
    compress_block(tokens, at, write, np.uint16(z), np.uint64(merged), np.uint64(kept))


def test_compress_block_writes_z_and_only_the_kept_lanes_packed():
    tokens = np.arange(100, dtype=np.uint16)
    _compress(tokens, 40, 3, 999, 0b101, 0b1111011)  # lanes 0 and 2 merged; lane 2 dropped
    assert tokens[3:9].tolist() == [999, 41, 43, 44, 45, 46]
    assert tokens[:3].tolist() == [0, 1, 2] and tokens[35:].tolist() == list(range(35, 100))


def test_popcount_counts_set_bits():
    count = nb.njit(lambda bits: popcount(bits))
    for bits in (0, 1, 0b1011, 2**63, 2**64 - 1):
        assert count(np.uint64(bits)) == bits.bit_count()


def _vector_compress_with(environment: dict) -> str:
    code = "from grover_jax.tokenizer.vector_ops import VECTOR_COMPRESS; print(VECTOR_COMPRESS)"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **environment}, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_pass_takes_vector_compaction_only_where_numba_targets_vbmi2():
    """The features numba compiles for decide (NUMBA_CPU_FEATURES, set or not with NUMBA_CPU_NAME; generic
    code has none), not the host's alone."""
    assert _vector_compress_with({"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""}) == "False"
    assert _vector_compress_with({"NUMBA_CPU_FEATURES": "+avx512f,-avx512vbmi2"}) == "False"
    if llvm.llvm_version_info < (20,):
        pytest.skip("LLVM before 20 does not lower the compress intrinsic to vpcompressw: always off")
    assert _vector_compress_with({"NUMBA_CPU_FEATURES": "-avx512vbmi2,+avx512vbmi2"}) == "True"
    assert _vector_compress_with({"NUMBA_CPU_NAME": "icelake-server", "NUMBA_CPU_FEATURES": "+avx512vbmi2"}) == "True"


def test_the_intrinsics_refuse_an_array_they_would_misread():
    """They address raw memory: a strided view, another dtype or a read-only array is a typing error,
    not a silent write outside the view."""
    strided = np.arange(400, dtype=np.uint16)[::2]
    read_only = np.arange(100, dtype=np.uint16)
    read_only.flags.writeable = False
    for tokens in (strided, np.arange(100, dtype=np.uint32), read_only):
        with pytest.raises(nb.core.errors.TypingError, match="a writable C-contiguous 1-D uint16 array is needed"):
            _compress(tokens, 10, 0, 999, 0b1, 0b1)
