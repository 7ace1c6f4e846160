"""Exact sums of host (numpy) arrays over the processes of a jax.distributed run."""

import numpy as np
from jax.experimental import multihost_utils


def sum_over_processes(values: np.ndarray) -> np.ndarray:
    """The element-wise sum of an int64 array over every process; each process gets the sum.

    The array travels as its raw 32-bit halves (an all-gather moves bytes) and is summed here in
    int64, so counts past 2**31 stay exact without jax_enable_x64, which would change the dtype of
    every other array of the process."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    gathered = np.asarray(multihost_utils.process_allgather(values.view(np.int32)))
    return gathered.reshape(gathered.shape[0], -1).view(np.int64).sum(axis=0)
