"""Keep freed host memory in the process heap (glibc), so each CPU train step does not page-fault
its working memory in afresh.

XLA:CPU allocates one temporary buffer per executable run (584 MB for the 4-layer, 256-wide,
512-token benchmark step) and frees it at the end. glibc serves such a request with a fresh
`mmap` (a thread's arena cannot hold it) and returns it with `munmap`, so every step first-touches
~150,000 new pages: 0.3 CPU-s of page faults per 1 s step on our 2-core VM. With one arena and
`mmap` off for malloc, the buffer comes from the main heap and is reused: no page faults after the
first step (scripts/bench_train.py: 1.09 -> 0.92 s/step). The cost is that freed memory is not
returned to the OS until the process ends: resident memory stays at its peak, which a training
process reaches every step anyway.

This is a process-wide setting and must run before JAX (or PyTorch) starts its thread pools.
`grover` calls it first thing on CPU; set GROVER_JAX_KEEP_FREED_MEMORY=0 to opt out. It does
nothing off glibc (macOS, musl) or where the accelerator's own allocator holds the activations.
"""

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_applied = False


def keep_freed_memory() -> bool:
    """Switch glibc malloc to one arena, no mmap, no trimming. True if it took effect."""
    global _applied
    if _applied:
        return True
    if os.environ.get("GROVER_JAX_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = all(
        mallopt(option, value)
        for option, value in (
            (_M_ARENA_MAX, 1),  # threads share the main heap, which can grow to any size
            (_M_MMAP_MAX, 0),  # never serve malloc with a fresh mapping
            (_M_TRIM_THRESHOLD, -1),  # never trim (glibc reads -1 as SIZE_MAX)
        )
    )
    _applied = ok
    return ok
