"""Which windows of a token store an analysis reads: evenly spaced, deterministic."""

import numpy as np

from grover_jax.analysis.errors import AnalysisError
from grover_jax.store import TokenStore


def evenly_spaced_windows(store: TokenStore, splits: tuple[str, ...], length: int, n: int) -> np.ndarray:
    """Token indices of at most `n` non-overlapping windows of `length` tokens, each inside one
    contig of `splits`, spread evenly over all such windows (so a small `n` still spans the
    whole region rather than its first megabase)."""
    starts = np.concatenate([store.window_starts(split, length) for split in splits])
    if len(starts) <= n:
        return starts
    return starts[np.linspace(0, len(starts) - 1, n).round().astype(np.int64)]


def split_windows(store: TokenStore, split: str, length: int, n: int) -> np.ndarray:
    """`evenly_spaced_windows` of one split, or an AnalysisError naming what is missing."""
    splits = list(dict.fromkeys(c["split"] for c in store.contigs))
    if split not in splits:
        raise AnalysisError(f"{store.path}: no split {split!r} (the store has {', '.join(splits)})")
    starts = evenly_spaced_windows(store, (split,), length, n)
    if len(starts) == 0:
        raise AnalysisError(f"{store.path}: split {split!r} has no window of {length} tokens")
    return starts
