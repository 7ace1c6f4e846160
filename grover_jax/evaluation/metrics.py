"""Classification metrics in numpy (definitions as scikit-learn's) and bootstrap intervals.

Binary tasks: F1 of class 1, MCC, AUROC and AUPRC (average precision, the step-wise area that
sklearn's `average_precision_score` computes) of class 1's score. With K > 2 classes: macro F1,
multi-class MCC (Gorodkin's R_K, as sklearn), one-vs-rest macro AUROC / AUPRC.
"""

import numpy as np

METRICS = ("accuracy", "f1", "mcc", "auroc", "auprc")


def _binary_counts(true: np.ndarray, predicted: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(np.sum(true & predicted))
    fp = int(np.sum(~true & predicted))
    fn = int(np.sum(true & ~predicted))
    tn = int(np.sum(~true & ~predicted))
    return tp, fp, fn, tn


def f1(labels: np.ndarray, predictions: np.ndarray, positive: int = 1) -> float:
    tp, fp, fn, _ = _binary_counts(labels == positive, predictions == positive)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def mcc(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    confusion = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(confusion, (labels, predictions), 1)
    t_k, p_k = confusion.sum(axis=1), confusion.sum(axis=0)
    c, s = np.trace(confusion), confusion.sum()
    denominator = np.sqrt((s * s - p_k @ p_k) * (s * s - t_k @ t_k))
    return float((c * s - t_k @ p_k) / denominator) if denominator else 0.0


def auroc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney U / (n+ n-), ties counted half; NaN when a class is absent."""
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: sum over score thresholds of (recall step) × precision."""
    n_pos = int(is_positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, hits = scores[order], is_positive[order].astype(np.float64)
    # One threshold per distinct score: the last index of each run of ties.
    last = np.concatenate((np.flatnonzero(np.diff(sorted_scores)), [len(scores) - 1]))
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1)
    recall_steps = np.diff(np.concatenate(([0.0], tp))) / n_pos
    return float(np.sum(recall_steps * precision))


def classification_metrics(labels: np.ndarray, probabilities_NxK: np.ndarray) -> dict[str, float]:
    """accuracy, F1, MCC, AUROC, AUPRC of argmax predictions / class probabilities."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities_NxK = np.asarray(probabilities_NxK, dtype=np.float64)
    num_classes = probabilities_NxK.shape[1]
    predictions = probabilities_NxK.argmax(axis=1)
    if num_classes == 2:
        is_positive = labels == 1
        f1_value = f1(labels, predictions)
        auroc_value = auroc(is_positive, probabilities_NxK[:, 1])
        auprc_value = auprc(is_positive, probabilities_NxK[:, 1])
    else:
        f1_value = float(np.mean([f1(labels, predictions, k) for k in range(num_classes)]))
        auroc_value = float(np.mean([auroc(labels == k, probabilities_NxK[:, k]) for k in range(num_classes)]))
        auprc_value = float(np.mean([auprc(labels == k, probabilities_NxK[:, k]) for k in range(num_classes)]))
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "f1": f1_value,
        "mcc": mcc(labels, predictions, num_classes),
        "auroc": auroc_value,
        "auprc": auprc_value,
    }


def bootstrap_intervals(labels: np.ndarray, probabilities_NxK: np.ndarray, n_resamples: int = 1000,
                        level: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each metric over resamples of the examples (with replacement).

    Resamples where a metric is undefined (one class only, for AUROC) are left out of its interval.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    samples = {name: [] for name in METRICS}
    for _ in range(n_resamples):
        index = rng.integers(0, len(labels), len(labels))
        for name, value in classification_metrics(labels[index], probabilities_NxK[index]).items():
            samples[name].append(value)
    tail = (1 - level) / 2 * 100
    intervals = {}
    for name, values in samples.items():
        values = np.array(values)
        values = values[~np.isnan(values)]
        intervals[name] = ((float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
                           if len(values) else (float("nan"), float("nan")))
    return intervals
