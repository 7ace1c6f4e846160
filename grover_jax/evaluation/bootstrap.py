"""Paired bootstrap intervals: two predictors scored on the same examples, resampled together."""

import numpy as np


def paired_bootstrap(values_a: np.ndarray, values_b: np.ndarray, groups: np.ndarray | None = None,
                     n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of (a - b) over examples and its percentile interval.

    Each resample draws, with replacement, whole groups (e.g. the genome windows the targets came
    from: targets of one window are not independent) or single examples when `groups` is None, and
    takes the same draw for a and b, so the interval is of the difference itself, not of two
    separately resampled means.
    """
    a, b = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired values must be two equal-length 1-d arrays, got {a.shape} and {b.shape}")
    groups = np.arange(len(a)) if groups is None else np.asarray(groups)
    _, group_of = np.unique(groups, return_inverse=True)
    n_groups = group_of.max() + 1
    difference_sum = np.bincount(group_of, weights=a - b, minlength=n_groups)
    count = np.bincount(group_of, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_resamples, n_groups))
    # Each resample's mean difference: summed differences of the drawn groups over their targets.
    means = difference_sum[draws].sum(axis=1) / count[draws].sum(axis=1)
    tail = (1 - level) / 2 * 100
    return {"difference": float((a - b).mean()), "low": float(np.percentile(means, tail)),
            "high": float(np.percentile(means, 100 - tail)), "n_groups": int(n_groups)}
