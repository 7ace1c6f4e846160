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


def paired_metric_bootstrap(labels: np.ndarray, probabilities_a_SxNxK: np.ndarray,
                            probabilities_b_SxNxK: np.ndarray, metric, n_resamples: int = 1000,
                            level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Interval of (mean over seeds of metric(a) - mean over seeds of metric(b)) for a metric that
    is not a mean over examples (MCC, AUROC): two arms, each fine-tuned with the same S seeds and
    scored on the same N test examples.

    Every resample draws N examples with replacement once and scores both arms, every seed, on that
    same draw, so the interval is of the paired difference. `metric(labels, probabilities_NxK)`
    returns a float; resamples where it is undefined (NaN) are left out.
    """
    labels = np.asarray(labels)
    a, b = np.asarray(probabilities_a_SxNxK), np.asarray(probabilities_b_SxNxK)
    if a.ndim != 3 or a.shape != b.shape or a.shape[1] != len(labels):
        raise ValueError(f"need [seeds, {len(labels)}, classes] for both arms, got {a.shape} and {b.shape}")

    def difference(index: np.ndarray) -> float:
        return float(np.mean([metric(labels[index], p[index]) for p in a])
                     - np.mean([metric(labels[index], p[index]) for p in b]))

    rng = np.random.default_rng(seed)
    draws = np.array([difference(rng.integers(0, len(labels), len(labels))) for _ in range(n_resamples)])
    draws = draws[~np.isnan(draws)]
    tail = (1 - level) / 2 * 100
    return {"difference": difference(np.arange(len(labels))), "low": float(np.percentile(draws, tail)),
            "high": float(np.percentile(draws, 100 - tail)), "n_resamples": len(draws)}
