"""grover_jax.host_memory: freed host memory is reused instead of page-faulted in afresh."""

import ctypes
import ctypes.util
import os
import subprocess
import sys

import pytest


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")
    except OSError:
        return False


glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _has_mallinfo2(),
    reason="a glibc setting, observed with mallinfo2 (glibc >= 2.33)",
)

# A fresh process per case: the setting is process-wide and glibc reads it once.
PROBE = """
import ctypes, ctypes.util
import numpy as np
from grover_jax.host_memory import keep_freed_memory
applied = keep_freed_memory()

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
mapped_before = libc.mallinfo2().hblkhd  # bytes held in mmap'd chunks
buffer = np.empty(256 * 2**20, np.uint8)  # like XLA's per-step temporary buffer
mapped = libc.mallinfo2().hblkhd - mapped_before
del buffer
heap_after_free = libc.mallinfo2().arena  # bytes the heap keeps
print(applied, mapped, heap_after_free)
"""


def probe(**env: str) -> tuple[bool, int, int]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
        env={**os.environ, **env},
    )
    applied, mapped, heap = result.stdout.split()
    return applied == "True", int(mapped), int(heap)


@glibc_only
def test_a_big_buffer_comes_from_the_heap_and_stays_there_when_freed():
    applied, mapped, heap_after_free = probe()
    assert applied
    assert mapped == 0  # not a fresh mapping (whose pages would fault in on every use)
    assert heap_after_free >= 256 * 2**20  # kept for the next step's buffer


@glibc_only
def test_opting_out_leaves_malloc_as_it_was():
    applied, mapped, heap_after_free = probe(GROVER_JAX_KEEP_FREED_MEMORY="0")
    assert not applied
    assert mapped >= 256 * 2**20  # glibc's default: big requests get their own mapping
    assert heap_after_free < 256 * 2**20
