"""What pretraining adds (programs/pretraining_effect.py): the label-fraction subsampling on a real
task, and paired intervals drawn from the same bootstrap resamples for both arms."""

import numpy as np
import pytest

from grover_jax.data.tasks.builders import TaskSpec, prepare_task
from grover_jax.data.tasks.errors import TaskDataError
from grover_jax.data.tasks.label_fraction import stratified_subset, with_train_fraction
from grover_jax.evaluation.bootstrap import paired_metric_bootstrap
from grover_jax.evaluation.metrics import classification_metrics


@pytest.fixture(scope="module")
def ctcf(tmp_path_factory):
    """CTCF motif sites of the bundled chr20 slice, bound vs unbound: an unbalanced real task."""
    return prepare_task(TaskSpec("ctcf"), tmp_path_factory.mktemp("tasks"))


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_a_label_fraction_keeps_the_class_balance_and_the_same_valid_and_test(ctcf, fraction):
    full_labels = ctcf.splits["train"].labels
    counts = np.bincount(full_labels)
    assert counts.min() != counts.max()  # unbalanced, so a plain random cut could shift the balance
    data = with_train_fraction(ctcf, fraction, seed=3)
    kept = data.splits["train"]
    assert np.bincount(kept.labels, minlength=len(counts)).tolist() == [
        max(1, round(fraction * n)) for n in counts]
    # Every kept example is a train example, with its own label and coordinates.
    index = {(c, s, e): (seq, y) for c, s, e, seq, y in zip(
        ctcf.splits["train"].chromosomes, ctcf.splits["train"].starts, ctcf.splits["train"].ends,
        ctcf.splits["train"].sequences, full_labels)}
    for c, s, e, seq, y in zip(kept.chromosomes, kept.starts, kept.ends, kept.sequences, kept.labels):
        assert index[(c, s, e)] == (seq, y)
    for split in ("valid", "test"):
        assert data.splits[split] is ctcf.splits[split]
    assert data.report["train_fraction"]["fraction"] == fraction
    # The seed picks the subset: the same seed the same examples (every arm of a seed), another not.
    again = with_train_fraction(ctcf, fraction, seed=3).splits["train"]
    other = with_train_fraction(ctcf, fraction, seed=4).splits["train"]
    assert again.sequences == kept.sequences and other.sequences != kept.sequences


def test_a_fraction_outside_zero_to_one_is_refused():
    for fraction in (0.0, -0.5, 1.5):
        with pytest.raises(TaskDataError, match="train_fraction"):
            stratified_subset(np.array([0, 1, 0, 1]), fraction, 0)
    assert stratified_subset(np.array([0, 1, 1]), 1.0, 0).tolist() == [0, 1, 2]


def _mcc(labels, probabilities):
    return classification_metrics(labels, probabilities)["mcc"]


def _probabilities(predicted: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - predicted, predicted], axis=-1).astype(np.float64)


def test_paired_intervals_score_both_arms_on_the_same_resamples():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    seeds_a = _probabilities(np.stack([np.where(rng.random(400) < 0.8, labels, 1 - labels) for _ in range(3)]))
    # Identical arms: on a shared resample the difference is exactly 0 every time; arms resampled
    # apart would spread around 0.
    same = paired_metric_bootstrap(labels, seeds_a, seeds_a.copy(), _mcc, n_resamples=200)
    assert same["difference"] == same["low"] == same["high"] == 0.0
    # A worse arm: the point estimate is the difference of mean MCCs over seeds on all examples.
    seeds_b = _probabilities(np.stack([np.where(rng.random(400) < 0.6, labels, 1 - labels) for _ in range(3)]))
    worse = paired_metric_bootstrap(labels, seeds_a, seeds_b, _mcc, n_resamples=200)
    expected = np.mean([_mcc(labels, p) for p in seeds_a]) - np.mean([_mcc(labels, p) for p in seeds_b])
    assert worse["difference"] == pytest.approx(expected)
    assert 0 < worse["low"] < worse["difference"] < worse["high"]
    with pytest.raises(ValueError, match="seeds"):
        paired_metric_bootstrap(labels, seeds_a, seeds_b[:2], _mcc)
